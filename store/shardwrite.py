"""Fused shard writes for uncompressed stores: the extractor's fast path (docs/performance.md, W2).

Zarr writes a track's shard chunk by chunk through its async codec pipeline: one task per inner
chunk, each chunk's bytes copied into a new buffer, the buffers joined into the shard, all on one
event-loop thread per process. For codec ``none`` a shard is just the array's bytes in chunk order
behind a small index (the layout ``store/shardread.py`` reads), so it can be written directly: each
inner chunk ``(channels, 1, chunk_frames, dim)`` is ``channels`` contiguous slices of the track's
array, plus zero padding in the last chunk of each layer, and the file is written from those slices
without copying them (one object ``put`` on object storage instead of a dozen requests).

The array's metadata (``zarr.json``) still comes from Zarr: it is created once per track shape in an
in-memory Zarr store and its bytes are written beside the shard, so the result is an ordinary Zarr
array (``tests/store/test_shardwrite.py`` reads it back through Zarr's own path). Chunks are written
in C order of the chunk grid (layer, then time block); Zarr itself writes Morton order, and the
format allows any order, since the index says where each chunk is.
"""

from __future__ import annotations

import json
from functools import lru_cache

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import MemoryStore

from mrnet.core.errors import UserError
from mrnet.core.files import write_atomic
from mrnet.store.format import CODECS
from mrnet.store.location import Location

DIMENSIONS = ("channel", "layer", "frame", "dim")


def compressors_for(codec: str, dtype: str):
    """Zarr v3 compressor list for a codec name (see docs/store.md for what each costs)."""
    if codec == "none":
        return None
    if codec == "zstd":
        return [ZstdCodec(level=3)]
    if codec == "blosc":
        return [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=np.dtype(dtype).itemsize)]
    raise UserError(f"--codec {codec!r}: choose one of {', '.join(CODECS)}")


def array_spec(shape: tuple[int, ...], dtype: str, chunk_frames: int, codec: str = "none") -> dict:
    """``zarr.create_array`` settings of one track array: one shard of inner chunks ``(channels, 1,
    chunk_frames, dim)``, every chunk written (features are never all zeros: skipping Zarr's per-chunk
    emptiness pass makes writes 1.4x faster, docs/performance.md W1)."""
    channels, layers, frames, dim = shape
    padded = -(-frames // chunk_frames) * chunk_frames
    return dict(
        shape=tuple(shape),
        dtype=dtype,
        chunks=(channels, 1, chunk_frames, dim),
        shards=(channels, layers, padded, dim),
        compressors=compressors_for(codec, dtype),
        dimension_names=DIMENSIONS,
        config={"write_empty_chunks": True},
    )


def array_metadata(shape: tuple[int, ...], dtype: str, chunk_frames: int, codec: str = "none") -> tuple[bytes, str]:
    """``(zarr.json bytes, shard key)`` of one track array, exactly what ``zarr.create_array`` makes for it."""
    return _metadata(tuple(int(s) for s in shape), str(dtype), int(chunk_frames), codec)


@lru_cache(maxsize=4096)
def _metadata(shape: tuple[int, ...], dtype: str, chunk_frames: int, codec: str) -> tuple[bytes, str]:
    files: dict = {}
    array = zarr.create_array(MemoryStore(files), name="a", **array_spec(shape, dtype, chunk_frames, codec))
    meta = files["a/zarr.json"].to_bytes()
    json.loads(meta)  # what we copy is one complete JSON document
    return meta, array.metadata.encode_chunk_key((0, 0, 0, 0))


def shard_pieces(data: np.ndarray, chunk_frames: int) -> list[memoryview]:
    """The shard of ``data`` ``(channels, layers, frames, dim)`` as byte pieces, in file order: every
    inner chunk in C order of the chunk grid, then the index and its CRC-32C. ``data`` must be
    C-contiguous and little-endian; its slices are referenced, not copied.

    >>> x = np.arange(2 * 3 * 4, dtype="<f2").reshape(1, 2, 3, 4)
    >>> raw = b"".join(shard_pieces(x, 2))
    >>> len(raw) == 2 * 2 * (2 * 4 * 2) + 2 * 2 * 16 + 4  # 4 chunks of 2 frames x 4 values, index, CRC
    True
    """
    channels, layers, frames, dim = data.shape
    itemsize = data.dtype.itemsize
    blocks = -(-frames // chunk_frames)
    tail = blocks * chunk_frames - frames  # frames of zero padding in each layer's last chunk
    pad = memoryview(bytes(tail * dim * itemsize))
    chunk_bytes = channels * chunk_frames * dim * itemsize
    pieces: list[memoryview] = []
    for layer in range(layers):
        for b in range(blocks):
            t0, t1 = b * chunk_frames, min(frames, (b + 1) * chunk_frames)
            for c in range(channels):
                pieces.append(data[c, layer, t0:t1].data.cast("B"))
                if t1 - t0 < chunk_frames:
                    pieces.append(pad)
    count = layers * blocks
    index = np.empty((1, layers, blocks, 1, 2), dtype="<u8")
    index[..., 0] = (np.arange(count, dtype=np.uint64) * chunk_bytes).reshape(1, layers, blocks, 1)
    index[..., 1] = chunk_bytes
    raw = index.tobytes()
    pieces.append(memoryview(raw))
    pieces.append(memoryview(np.array([google_crc32c.value(raw)], dtype="<u4").tobytes()))
    return pieces


def write_shard_array(location: Location, name: str, data: np.ndarray, chunk_frames: int) -> int:
    """Write ``data`` as the uncompressed one-shard Zarr array ``name``; return the shard's size in bytes.

    The shard goes first and the metadata last, each replacing what was there (a track rewritten on
    resume), so a reader never finds metadata that points at a half-written shard of this write.
    Locally each file is written to a temporary name and renamed into place.
    """
    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    meta, shard_key = array_metadata(data.shape, data.dtype.name, chunk_frames)
    pieces = shard_pieces(data, chunk_frames)
    size = sum(p.nbytes for p in pieces)
    if location.local:
        write_atomic(location.path(f"{name}/{shard_key}"), pieces)
        write_atomic(location.path(f"{name}/zarr.json"), meta)
    else:
        location.fs.pipe_file(location.path(f"{name}/{shard_key}"), b"".join(pieces))
        location.fs.pipe_file(location.path(f"{name}/zarr.json"), meta)
    return size
