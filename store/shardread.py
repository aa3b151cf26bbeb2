"""Fused crop reads for uncompressed shards: the training loader's fast path.

Zarr reads a crop chunk by chunk through its async codec pipeline, which costs far more than the bytes
(measured in docs/store.md and docs/performance.md). For a track array stored with codec ``none`` the
shard is plain bytes behind a small index, so a crop can be read directly: the index (one small read,
cached per track) gives each inner chunk's byte range; the inner chunks of one layer that follow each
other in time are adjacent in the shard and coalesce into one range; all ranges of a crop are fetched
together (a memory map locally, concurrent range requests on object storage). The result is identical
to Zarr's read (``tests/store/test_shardread.py``); arrays with a compressor use Zarr.

Every read, fused or through Zarr, first loads and checks the shard's index (its CRC-32C, and that
every inner chunk was written): a shard that is missing, cut short or damaged is an error, never the
fill value that Zarr returns for data it cannot find.

Shard layout (Zarr v3 ``sharding_indexed``, index at the end): inner chunks, then per inner chunk an
(offset, nbytes) pair of little-endian uint64 in C order of the chunk grid, then a CRC-32C of the index.
"""

from __future__ import annotations

import mmap
import os
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import google_crc32c
import numpy as np

from mrnet.store.location import Location

EMPTY = 2**64 - 1  # the index's offset and size of an inner chunk that was never written


@dataclass(frozen=True)
class ShardIndex:
    path: str  # the shard object's path (local file, or path within the fsspec filesystem)
    shape: tuple[int, ...]  # array shape (channels, layers, frames, dim)
    chunk: tuple[int, ...]  # inner chunk shape
    dtype: np.dtype
    table: np.ndarray  # (grid..., 2) uint64 offsets and sizes
    plain: bool  # inner chunks are raw little-endian bytes (codec none): the fused read applies

    @property
    def entries(self) -> list:
        """``entries[layer][block] = [offset, nbytes]`` as Python ints (channel block 0, dim block 0)."""
        cached = self.__dict__.get("_entries")
        if cached is None:
            cached = self.table[0, :, :, 0].tolist()
            object.__setattr__(self, "_entries", cached)
        return cached


def shard_layout(array) -> tuple[tuple[int, ...], bool] | None:
    """``(inner chunk shape, plain)`` when ``array`` is one shard with its index at the end (every track
    array mrnet writes, with any codec), else None; ``plain``: uncompressed little-endian chunks."""
    meta = array.metadata
    codecs: tuple[Any, ...] = tuple(getattr(meta, "codecs", ()))
    if len(codecs) != 1 or type(codecs[0]).__name__ != "ShardingCodec":
        return None
    shard = codecs[0]
    index = [type(c).__name__ for c in shard.index_codecs]
    if index != ["BytesCodec", "Crc32cCodec"] or str(shard.index_location.value) != "end":
        return None
    if tuple(meta.chunk_grid.chunk_shape) != tuple(-(-s // c) * c for s, c in zip(meta.shape, shard.chunk_shape)):
        return None  # more than one shard
    inner = [type(c).__name__ for c in shard.codecs]
    little = all(getattr(c, "endian", None) is None or c.endian.value == "little" for c in shard.codecs)
    return tuple(shard.chunk_shape), inner == ["BytesCodec"] and little


def load_index(location: Location, key: str, array) -> ShardIndex | None:
    """The checked index of a track's shard (None for a layout mrnet does not write, which Zarr reads).

    Raises ``FileNotFoundError`` for a missing shard and ``OSError`` for a damaged or incomplete one.
    """
    layout = shard_layout(array)
    if layout is None:
        return None
    chunk, plain = layout
    grid = tuple(-(-s // c) for s, c in zip(array.shape, chunk))
    n = int(np.prod(grid))
    path = location.path(f"features/{key}/c/" + "/".join("0" * len(grid)))
    size = n * 16 + 4
    raw = location.read_tail(path, size)
    if len(raw) != size or google_crc32c.value(raw[:-4]) != int(np.frombuffer(raw[-4:], dtype="<u4")[0]):
        raise OSError(f"{path}: the shard index is damaged (CRC-32C mismatch)")
    table = np.frombuffer(raw[: n * 16], dtype="<u8").reshape(grid + (2,))
    if (table[..., 0] == EMPTY).any():  # mrnet writes every inner chunk; one missing is damage, not zeros
        raise OSError(f"{path}: {int((table[..., 0] == EMPTY).sum())} inner chunk(s) were never written")
    return ShardIndex(path, tuple(array.shape), chunk, np.dtype(array.dtype).newbyteorder("<"), table, plain)


def read_crop(
    location: Location, index: ShardIndex, start: int, stop: int, layers: list[int], out: np.ndarray | None = None
) -> np.ndarray:
    """Frames ``[start, stop)`` of ``layers``: ``(channels, len(layers), stop - start, dim)``.

    Locally the shard is memory-mapped and each chunk's needed frames are copied once, straight into
    the result (what a NumPy memmap read costs). On object storage the chunks' byte ranges are fetched
    together, adjacent ones merged, into one buffer ``(layers, blocks, channels, frames, dim)``.
    """
    channels, _, _, dim = index.shape
    cc, cl, ct, cd = index.chunk
    if cc != channels or cl != 1 or cd != dim:
        raise ValueError("fast path expects inner chunks of (channels, 1, frames, dim)")
    if location.local:
        return _read_mapped(index, start, stop, layers, out)
    b0, b1 = start // ct, (stop - 1) // ct + 1
    buf = np.empty((len(layers), b1 - b0, cc, ct, cd), dtype=index.dtype)
    runs: list[list[Any]] = []  # (file offset, [(layer position, block)]) for chunks adjacent in the shard
    for li, layer in enumerate(layers):
        for b, (off, size) in enumerate(index.table[0, layer, b0:b1, 0]):
            if runs and runs[-1][0] + runs[-1][2] == int(off):
                runs[-1][1].append((li, b))
                runs[-1][2] += int(size)
            else:
                runs.append([int(off), [(li, b)], int(size)])
    _fill(location, index.path, buf, runs)
    lo = start - b0 * ct
    crop = buf.transpose(2, 0, 1, 3, 4).reshape(cc, len(layers), (b1 - b0) * ct, cd)[
        :, :, lo : lo + (stop - start), :
    ]  # (C, L, T, D)
    if out is None:
        return crop
    out[...] = crop
    return out


def _read_mapped(
    index: ShardIndex, start: int, stop: int, layers: list[int], out: np.ndarray | None = None
) -> np.ndarray:
    view = _chunk_view(index)
    if view is None:
        return _read_mapped_chunkwise(index, start, stop, layers, out)
    chunks, ids, n = view  # (n, C, T_chunk, D) view of the shard; chunk id per (layer, block)
    ct = index.chunk[2]
    if out is None:
        out = np.empty((chunks.shape[1], len(layers), stop - start, chunks.shape[3]), dtype=chunks.dtype)
    b0, b1 = start // ct, (stop - 1) // ct
    for li, layer in enumerate(layers):
        row, o, pos = ids[layer], out[:, li], 0
        for b in range(b0, b1 + 1):
            lo = start - b * ct if b == b0 else 0  # frames of chunk b in the crop: [lo, hi)
            hi = stop - b * ct if b == b1 else ct
            cid = row[b]
            if cid >= n:
                raise OSError(f"{index.path}: shard shorter than its index says (truncated write?)")
            else:
                o[:, pos : pos + hi - lo] = chunks[cid, :, lo:hi]
            pos += hi - lo
    return out


def _chunk_view(index: ShardIndex):
    """The mapped shard as an array of inner chunks, with the chunk id of every (layer, block), so each
    chunk of a crop is one slice assignment (docs/performance.md, L2). None when the chunks are not all
    whole, equal-sized and aligned (StoreWriter always writes them so); such shards take the
    chunk-by-chunk loop.

    Only the chunk ids are kept on the index (which a reader keeps for every track it has read); the
    map itself comes from a cache of the most recent shards (:func:`_chunks`), so an epoch over any
    number of tracks holds at most that many maps and file descriptors open, not one per track. The
    index keeps a weak reference to its map, which does not hold it open: a crop of a track whose map
    is still cached takes it from there: a lookup and a call, 0.2 µs, where the cache's lookup (hashing its
    five arguments) cost 0.56 µs of a one-layer crop's 15 µs of CPU time (warm, docs/performance.md)."""
    held = index.__dict__.get("_held")
    if held is not None:
        chunks = held()
        if chunks is not None:
            return chunks, index.__dict__["_chunk_ids"], chunks.shape[0]
    if "_chunk_ids" not in index.__dict__:
        cc, _, ct, cd = index.chunk
        size = cc * ct * cd * index.dtype.itemsize
        table = index.table[0, :, :, 0]
        offs, sizes = table[..., 0], table[..., 1]
        aligned = bool((sizes == size).all() and (offs % size == 0).all())
        object.__setattr__(index, "_chunk_ids", (offs // size).astype(np.int64).tolist() if aligned else None)
    ids = index.__dict__["_chunk_ids"]
    if ids is None:
        return None
    cc, _, ct, cd = index.chunk
    chunks = _chunks(index.path, index.dtype.str, cc, ct, cd)
    object.__setattr__(index, "_held", weakref.ref(chunks))
    return chunks, ids, chunks.shape[0]


@lru_cache(maxsize=128)
def _chunks(path: str, dtype: str, channels: int, frames: int, dim: int) -> np.ndarray:
    """The mapped shard at ``path`` viewed as whole inner chunks ``(n, channels, frames, dim)``."""
    shard = _mapped(path)
    size = channels * frames * dim * np.dtype(dtype).itemsize
    n = shard.size // size
    return shard[: n * size].view(dtype).reshape(n, channels, frames, dim)


def _read_mapped_chunkwise(
    index: ShardIndex, start: int, stop: int, layers: list[int], out: np.ndarray | None = None
) -> np.ndarray:
    cc, _, ct, cd = index.chunk
    shard = _mapped(index.path)
    table = index.entries  # plain lists: this loop runs per chunk per crop
    if out is None:
        out = np.empty((cc, len(layers), stop - start, cd), dtype=index.dtype)
    expect = cc * ct * cd * index.dtype.itemsize
    for li, layer in enumerate(layers):
        for b in range(start // ct, (stop - 1) // ct + 1):
            lo, hi = max(start, b * ct), min(stop, (b + 1) * ct)  # frames of this chunk in the crop
            off, size = table[layer][b]
            if off + size > shard.size or size != expect:
                raise OSError(f"{index.path}: shard shorter than its index says (truncated write?)")
            chunk = shard[off : off + size].view(index.dtype).reshape(cc, ct, cd)  # (C, T_chunk, D)
            out[:, li, lo - start : hi - start, :] = chunk[:, lo - b * ct : hi - b * ct, :]
    return out


@lru_cache(maxsize=128)
def _mapped(path: str) -> np.ndarray:
    """A read-only map of a shard file as a plain uint8 array (kept for the most recent tracks)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return np.empty(0, np.uint8)
        return np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)


def _fill(location: Location, path: str, buf: np.ndarray, runs: list) -> None:
    views = [[memoryview(buf[li, b]).cast("B") for li, b in chunks] for _, chunks, _ in runs]
    blobs = location.read_ranges(path, [o for o, _, _ in runs], [o + n for o, _, n in runs])
    for blob, targets, (_, _, size) in zip(blobs, views, runs):
        if len(blob) != size:
            raise OSError(f"{path}: shard shorter than its index says (truncated write?)")
        pos = 0
        for target in targets:
            target[:] = blob[pos : pos + len(target)]
            pos += len(target)
