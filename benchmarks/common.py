"""What every benchmark shares: the machine, the sizes of a run, child processes, timing helpers.

**Child processes.** Every configuration whose memory or timing must not be disturbed by another runs
in its own Python process (``python -m benchmarks._child``), which the parent samples for resident
memory (the sum over the process and its children, e.g. DataLoader workers, and PSS so shared pages
count once). The data the benchmarks run on is ``benchmarks.data``; the models, ``benchmarks.models``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MRNET_BENCH_CACHE", Path.home() / ".cache" / "mrnet" / "bench"))
RESULTS = REPO / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- sizes of a run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """How big each measurement is. ``cpu`` sizes keep a full run near 15 minutes on 2 cores."""

    name: str
    device: str
    # extraction (figures 1, 2): MP3 clips of clip_seconds, the batch and unit size of the run
    extract_clips: int
    clip_seconds: float
    batch_size: int
    unit_size: int
    rounds: int  # interleaved repetitions of the WavLM measurements (best of each side is kept)
    ceiling_clips: int  # 30 s clips for the pipeline-ceiling runs (model stubbed)
    # write (figure 3): disk test size
    disk_test_mb: int
    # loader (figure 4)
    loader_tracks: int
    loader_crops: int
    loader_repeat: int
    # training (figure 5)
    train_tracks: int
    train_batch: int
    train_steps: int
    train_warmup: int
    # memory (figure 6): extraction clips (short clips, small units) and training tracks, two sizes each
    memory_clip_seconds: float
    memory_extract_clips: tuple[int, int]
    memory_unit_size: int
    memory_train_tracks: tuple[int, int]


PROFILES = {
    "cpu": Profile(
        "cpu-full",
        "cpu",
        extract_clips=4,
        clip_seconds=30.0,
        batch_size=2,
        unit_size=2,
        rounds=2,
        ceiling_clips=24,
        disk_test_mb=1024,
        loader_tracks=24,
        loader_crops=300,
        loader_repeat=5,
        train_tracks=48,
        train_batch=4,
        train_steps=3,
        train_warmup=1,
        memory_clip_seconds=5.0,
        memory_extract_clips=(12, 48),
        memory_unit_size=2,
        memory_train_tracks=(48, 192),
    ),
    "cpu-quick": Profile(
        "cpu-quick",
        "cpu",
        extract_clips=4,
        clip_seconds=10.0,
        batch_size=2,
        unit_size=2,
        rounds=2,
        ceiling_clips=16,
        disk_test_mb=256,
        loader_tracks=8,
        loader_crops=200,
        loader_repeat=3,
        train_tracks=16,
        train_batch=2,
        train_steps=2,
        train_warmup=1,
        memory_clip_seconds=5.0,
        memory_extract_clips=(4, 16),
        memory_unit_size=1,
        memory_train_tracks=(40, 160),
    ),
    "cuda": Profile(
        "cuda-full",
        "cuda",
        extract_clips=256,
        clip_seconds=30.0,
        batch_size=8,
        unit_size=16,
        rounds=3,
        ceiling_clips=256,
        disk_test_mb=4096,
        loader_tracks=64,
        loader_crops=1000,
        loader_repeat=5,
        train_tracks=480,
        train_batch=48,
        train_steps=20,
        train_warmup=3,
        memory_clip_seconds=30.0,
        memory_extract_clips=(64, 256),
        memory_unit_size=16,
        memory_train_tracks=(480, 1440),
    ),
    "cuda-quick": Profile(
        "cuda-quick",
        "cuda",
        extract_clips=64,
        clip_seconds=30.0,
        batch_size=8,
        unit_size=16,
        rounds=2,
        ceiling_clips=64,
        disk_test_mb=1024,
        loader_tracks=16,
        loader_crops=300,
        loader_repeat=3,
        train_tracks=144,
        train_batch=48,
        train_steps=8,
        train_warmup=2,
        memory_clip_seconds=30.0,
        memory_extract_clips=(32, 96),
        memory_unit_size=16,
        memory_train_tracks=(480, 960),
    ),
}


def pick_profile(device: str, quick: bool) -> Profile:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return PROFILES[device + ("-quick" if quick else "")]


@dataclass
class Context:
    """What a figure's ``run`` gets: sizes, a work folder, and what earlier figures of this run left."""

    profile: Profile
    work: Path
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return self.profile.device


# --- the machine ----------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _disk(path: Path) -> dict:
    """The block device and file system under ``path``."""
    out: dict[str, Any] = {"path": str(path)}
    with contextlib.suppress(Exception):
        usage = shutil.disk_usage(path)
        out.update(total_gb=round(usage.total / 1e9, 1), free_gb=round(usage.free / 1e9, 1))
    with contextlib.suppress(Exception):
        import psutil

        best = None
        for part in psutil.disk_partitions(all=True):
            if str(path).startswith(part.mountpoint) and (best is None or len(part.mountpoint) > len(best.mountpoint)):
                best = part
        if best is not None:
            out.update(device=best.device, fstype=best.fstype, mountpoint=best.mountpoint)
            name = Path(best.device).name
            base = re.sub(r"p?\d+$", "", name) if not Path(f"/sys/block/{name}").exists() else name
            rot = Path(f"/sys/block/{base}/queue/rotational")
            if rot.exists():
                out["rotational"] = rot.read_text().strip() == "1"
            model = Path(f"/sys/block/{base}/device/model")
            if model.exists():
                out["model"] = model.read_text().strip()
    return out


def machine(work: Path) -> dict:
    import psutil
    import torch

    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "count": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
        }
    virt = None
    with contextlib.suppress(Exception):
        virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    if virt is None and "hypervisor" in Path("/proc/cpuinfo").read_text():
        virt = "virtual machine (hypervisor flag set)"
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "disk": _disk(work),
        "gpu": gpu,
        "virtualization": virt,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": _versions(),
    }


def _versions() -> dict:
    from importlib.metadata import version

    out = {}
    for name in ("torch", "transformers", "zarr", "numpy", "soundfile", "soxr", "numcodecs"):
        with contextlib.suppress(Exception):
            out[name] = version(name)
    return out


def machine_slug(info: dict, device: str) -> str:
    if device == "cuda" and info.get("gpu"):
        name = info["gpu"]["name"]
    else:
        name = f"{info['cpu']}-{info['usable_cpus']}c"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- child processes with memory sampling ---------------------------------------------------------
def pinned_to(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps a child process, and every thread it starts, on ``cpus`` (None: anywhere)."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def newest_result(folder: Path, rank: Callable[[Path, dict], tuple | None]) -> tuple[Path, dict] | None:
    """The readable result file in ``folder`` that ``rank(path, data)`` puts highest, ties to the most recently
    written; ``rank`` returns None for a file that is not a candidate (another benchmark's, no figures)."""
    found = []
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        key = rank(path, data)
        if key is not None:
            found.append(((*key, path.stat().st_mtime), path, data))
    if not found:
        return None
    found.sort(key=lambda t: t[0])
    return found[-1][1], found[-1][2]


def run_child(
    target: str,
    args: dict,
    *,
    timeout: float = 1800,
    sample_every: float = 0.1,
    env: dict | None = None,
    cpus: set[int] | None = None,
) -> dict:
    """Run ``module:function(**args)`` in a fresh Python; return its result plus wall time and peak memory.

    Memory: ``peak_rss_mb`` is the highest sampled sum of RSS over the process tree, ``peak_pss_mb`` the
    same with PSS (pages shared between processes, e.g. copy-on-write after a fork, split between
    them), ``peak_pss_anon_mb`` the anonymous part of PSS (heap, tensors: what the kernel cannot drop
    and re-read, unlike mapped files), ``maxrss_mb`` the kernel's exact peak RSS of the main process
    (``VmHWM``, not sampled). ``cpus``: the cores the child (and every thread it starts) may run on.
    """
    import psutil

    with tempfile.TemporaryDirectory(prefix="mrnet-bench-") as tmp:
        argf, outf = Path(tmp) / "args.json", Path(tmp) / "out.json"
        argf.write_text(json.dumps(args))
        cmd = [sys.executable, "-m", "benchmarks._child", target, str(argf), str(outf)]
        began = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=pinned_to(cpus),
        )
        peaks = {"rss": 0, "pss": 0, "pss_anon": 0}
        stop = threading.Event()
        lines: list[str] = []

        def sample():
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            tick = 0
            while not stop.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                    peaks["rss"] = max(peaks["rss"], sum(p.memory_info().rss for p in procs))
                    if tick % 3 == 0:  # smaps_rollup walks the page tables: every 3rd sample
                        pss = anon = 0
                        for p in procs:
                            roll = _smaps_rollup(p.pid)
                            pss += roll.get("Pss", 0)
                            anon += roll.get("Pss_Anon", 0)
                        peaks["pss"] = max(peaks["pss"], pss)
                        peaks["pss_anon"] = max(peaks["pss_anon"], anon)
                except psutil.Error:
                    pass
                tick += 1
                stop.wait(sample_every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def pump():
            for line in proc.stdout:
                lines.append(line)
                if os.environ.get("MRNET_BENCH_VERBOSE"):
                    print("    | " + line, end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"{target} timed out after {timeout:.0f} s; last output:\n{''.join(lines[-30:])}"
            ) from None
        finally:
            stop.set()
            sampler.join()
            reader.join(timeout=5)
        wall = time.perf_counter() - began
        if proc.returncode != 0 or not outf.exists():
            raise RuntimeError(f"{target} failed (exit {proc.returncode}); last output:\n{''.join(lines[-40:])}")
        result = json.loads(outf.read_text())
    result.setdefault("memory", {}).update(
        peak_rss_mb=round(peaks["rss"] / 2**20, 1),
        peak_pss_mb=round(peaks["pss"] / 2**20, 1),
        peak_pss_anon_mb=round(peaks["pss_anon"] / 2**20, 1),
    )
    result["process_wall_s"] = round(wall, 3)
    return result


def _smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in bytes (Linux >= 4.14; Pss_Anon >= 5.9); empty if unreadable."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


# --- small helpers ----------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return float(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2)


def jsonable(obj):
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(type(obj))
