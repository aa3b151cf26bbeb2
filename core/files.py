"""Crash-safe local writes: a file appears whole under its name or not at all.

Every file the tools write in place (store metadata and shards, manifests, journals, run configs,
checkpoints, copies) is written under a temporary name beside its target and renamed over it, so a
process killed mid-write leaves the previous file (or none) plus a temporary file that
:func:`is_temporary` recognises and a later run may delete: it is the tool's own, never a user's.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "x.json"
>>> write_atomic(target, b"{}")
>>> target.read_bytes(), sorted(p.name for p in target.parent.iterdir())
(b'{}', ['x.json'])
>>> is_temporary(temporary_name(target).name), is_temporary("x.json")
(True, False)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: What every temporary file name contains: ``<name>.mrnet-tmp-<8 hex digits>``.
TEMP_MARK = ".mrnet-tmp-"


def temporary_name(target: Path) -> Path:
    """A fresh temporary path beside ``target``."""
    return target.with_name(f"{target.name}{TEMP_MARK}{uuid.uuid4().hex[:8]}")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`temporary_name`'s (left behind by a killed writer)."""
    return TEMP_MARK in name.rsplit("/", 1)[-1]


@contextmanager
def atomic_path(target: Path | str, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``target``'s new content to; on success it is renamed over
    ``target`` (``durable``: fsync'ed first), on failure removed. Parent folders are created."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(target: Path | str, data: bytes | Iterable[bytes | memoryview], *, durable: bool = False) -> None:
    """Write ``data`` (bytes, or pieces written in order without joining them) to ``target`` atomically."""
    with atomic_path(target, durable=durable) as tmp, open(tmp, "wb") as f:
        for piece in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
            f.write(piece)
