"""What this machine offers a run: the cores this process may use, the torch device to run on, and
whether the GPUs a user lists exist.

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
        check_gpu_ids([device.index or 0], given=f"{option} {name}", fix=f"Use {option} cpu (or auto).")
    return device


def cuda_devices() -> int:
    """CUDA devices PyTorch can use here (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpu_ids(ids, *, given: str, fix: str) -> None:
    """``UserError`` when a GPU id in ``ids`` does not exist here, quoting the option as ``given``
    (e.g. ``--gpus 0,3``) and ending with ``fix``: the one check of ``--gpus`` and ``--device cuda:N``.

    >>> check_gpu_ids([], given="--gpus", fix="")
    """
    ids = list(ids)
    if not ids:
        return
    count = cuda_devices()
    if not count:
        raise UserError(f"{given}: this machine has no CUDA device that PyTorch can use. {fix}")
    missing = [g for g in ids if not 0 <= g < count]
    if missing:
        raise UserError(
            f"{given}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}, so GPU(s) {missing} do not exist. {fix}"
        )
