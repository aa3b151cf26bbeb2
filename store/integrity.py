"""A store's checksums: each track's CRC-32 computed in bounded memory, and the metadata's own record.

Each track's features carry their CRC-32 in the manifest (``format.checksum``, written by the writer);
:func:`streamed_checksum` recomputes it from a stored track a few layers at a time, for
``mrnet-store verify`` and for the reader's read-time checks (one function, so both check the same
bytes the same way). The metadata record covers what describes the tracks. When a
store is finalized, ``integrity.json`` records a CRC-32C of every metadata file a reader uses (the
root ``zarr.json`` with the provenance, the ``features`` group, the manifest and its summary), and a
CRC-32C of that record itself, so damage to the record is found as well. ``problems`` lists each
file that is missing, unreadable or changed since.

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> loc = Location.parse(synthetic_store(tempfile.mkdtemp() + "/i.zarr", per_genre=1))
>>> problems(loc)
[]
>>> loc.write_bytes("manifest/summary.json", loc.read_bytes("manifest/summary.json").replace(b"3", b"4"))
>>> problems(loc)
['manifest/summary.json changed since the store was finalized (CRC-32C ... recorded ...)']
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable

import google_crc32c
import numpy as np

from mrnet.store.location import Location

INTEGRITY = "integrity.json"
FORMAT = "mrnet-integrity/1"
#: The metadata files a reader uses, in the order they are recorded.
COVERED = (
    "zarr.json",
    "features/zarr.json",
    "manifest/tracks.parquet",
    "manifest/genres.parquet",
    "manifest/summary.json",
)


def streamed_checksum(
    read_layers: Callable[[int, int, int], np.ndarray], shape: tuple[int, ...], itemsize: int, block_bytes: int
) -> str:
    """``format.checksum`` of a whole ``(channels, layers, frames, dim)`` track without holding it: CRC-32
    over its C-order bytes, channel by channel, as many whole layers at a time as fit in ``block_bytes``
    (at least one). ``read_layers(channel, first, stop)`` gives that channel's layers ``[first, stop)``.

    >>> from mrnet.store.format import checksum
    >>> x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    >>> streamed_checksum(lambda c, lo, hi: x[c, lo:hi], x.shape, x.itemsize, block_bytes=1) == checksum(x)
    True
    """
    channels, layers = shape[0], shape[1]
    per_layer = max(1, int(np.prod(shape[2:], dtype=np.int64)) * itemsize)
    step = max(1, block_bytes // per_layer)
    value = 0
    for c in range(channels):
        for first in range(0, layers, step):
            value = zlib.crc32(np.ascontiguousarray(read_layers(c, first, min(layers, first + step))).data, value)
    return f"crc32:{value & 0xFFFFFFFF:08x}"


def crc(data: bytes) -> str:
    return f"crc32c:{google_crc32c.value(data):08x}"


def record(location: Location) -> None:
    """Write ``integrity.json`` for the store's current metadata (call last when finalizing)."""
    files = {rel: crc(location.read_bytes(rel)) for rel in COVERED if location.exists(rel)}
    location.write_bytes(INTEGRITY, _document(files))


def recorded(location: Location) -> dict[str, str] | None:
    """The recorded checksums (file -> ``crc32c:...``); None without a record; ``ValueError`` for a damaged one."""
    if not location.exists(INTEGRITY):
        return None
    raw = location.read_bytes(INTEGRITY)
    try:
        doc = json.loads(raw)
        files = doc["files"]
        intact = doc.get("format") == FORMAT and isinstance(files, dict) and raw == _document(files)
    except (ValueError, KeyError, TypeError):
        intact = False
    if not intact:
        raise ValueError(
            f"{INTEGRITY} is damaged (it no longer matches its own checksum): the metadata cannot be checked"
        )
    return files


def problems(location: Location) -> list[str]:
    """What is wrong with the store's metadata against its integrity record (empty: nothing, or no record)."""
    try:
        files = recorded(location)
    except ValueError as err:
        return [str(err)]
    found = []
    for rel, expected in (files or {}).items():
        if not location.exists(rel):
            found.append(f"{rel} missing (recorded in {INTEGRITY})")
        elif (now := crc(location.read_bytes(rel))) != expected:
            found.append(f"{rel} changed since the store was finalized (CRC-32C {now}, recorded {expected})")
    return found


def _document(files: dict[str, str]) -> bytes:
    """The record's bytes: the file checksums and the checksum of their canonical JSON."""
    body = json.dumps(files, sort_keys=True, separators=(",", ":"))
    return (
        json.dumps({"format": FORMAT, "files": files, "checksum": crc(body.encode())}, indent=2, sort_keys=True) + "\n"
    ).encode()
