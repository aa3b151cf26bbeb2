"""``python -m benchmarks._child module:function ARGS.json OUT.json``: one measurement in a fresh process.

Calls ``function(**args)`` and writes its JSON result, with the process's own CPU time and peak RSS,
to ``OUT.json``. The peak is ``VmHWM`` from ``/proc/self/status`` (the high-water mark of this process's
own address space), not ``ru_maxrss``: on Linux ``ru_maxrss`` survives ``execve``, so a child forked
from a big parent reports the parent's size.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time


def _vm_hwm_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    began = time.perf_counter()
    target, argf, outf = sys.argv[1:4]
    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)
    imported = time.perf_counter() - began
    result = fn(**json.loads(open(argf).read()))
    me = resource.getrusage(resource.RUSAGE_SELF)
    result.setdefault("memory", {}).update(maxrss_mb=round(_vm_hwm_kb() / 1024, 1))
    result["child"] = {
        "import_s": round(imported, 3),
        "cpu_user_s": round(me.ru_utime, 2),
        "cpu_sys_s": round(me.ru_stime, 2),
    }
    with open(outf, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
