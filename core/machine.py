"""What this machine offers a run: the cores this process may use, and the torch device to run on.

>>> available_cores() >= 1
True
>>> pick_device("cpu").type
'cpu'
"""

from __future__ import annotations

import os

from mrnet.core.errors import UserError


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pick_device(name: str | None = "auto", *, option: str = "--device"):
    """``torch.device`` for ``auto`` (CUDA when there is one, else the CPU), ``cpu``, ``cuda`` or
    ``cuda:N``; a ``UserError`` naming ``option`` when the device does not exist here."""
    import torch

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"{option} {name!r}: not a device name; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            seen = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise UserError(f"{option} {name}: this machine has {seen}. Use {option} cpu (or auto).")
    return device
