"""Proposed fixes, staged here so the benchmarks can measure them beside the shipped code.

Nothing in ``mrnet`` imports this module. Each proposal reproduces one change to the package as a
patch applied in a benchmark's own process (a child process, or restored afterwards), so a run
measures shipped and proposed code side by side on the same data; ``docs/performance.md`` gives the
exact change and the numbers. Once a proposal is applied to the package, its "proposed" column equals
the shipped one and the proposal can be deleted from here.
"""

from __future__ import annotations

import threading


# --- loader -------------------------------------------------------------------------------------
def chunk_view_read(index, start: int, stop: int, layers: list[int]):
    """Proposed ``mrnet.store.shardread._read_mapped``: one NumPy view of the mapped shard as an array
    of inner chunks ``(n, channels, chunk_frames, dim)``, made once per track, so the per-chunk work of
    a crop is one slice assignment instead of a view, a reshape, bounds arithmetic with ``max``/``min``
    and two slicings. Same result, same errors (a chunk past the end of a truncated shard raises
    ``OSError``); a shard whose chunks are not all whole, equal-sized and aligned (never written by
    ``StoreWriter``) takes the shipped loop."""
    import numpy as np

    from mrnet.store import shardread

    view = index.__dict__.get("_chunk_view")
    if view is None:
        shard = shardread._mapped(index.path)
        cc, _, ct, cd = index.chunk
        size = cc * ct * cd * index.dtype.itemsize
        table = index.table[0, :, :, 0]
        offs, sizes = table[..., 0], table[..., 1]
        empty = offs == shardread.EMPTY
        regular = bool(((sizes == size) | empty).all() and ((offs % size == 0) | empty).all())
        if regular:
            n = shard.size // size
            chunks = shard[: n * size].view(index.dtype).reshape(n, cc, ct, cd)
            ids = np.where(empty, -1, offs // size if size else 0).astype(np.int64).tolist()
            view = (chunks, ids, n, ct)
        else:
            view = False
        object.__setattr__(index, "_chunk_view", view)
    if view is False:
        return _shipped_read_mapped(index, start, stop, layers)
    chunks, ids, n, ct = view
    out = np.empty((chunks.shape[1], len(layers), stop - start, chunks.shape[3]), dtype=chunks.dtype)
    b0, b1 = start // ct, (stop - 1) // ct
    for li, layer in enumerate(layers):
        row, o = ids[layer], out[:, li]
        pos = 0
        for b in range(b0, b1 + 1):
            lo = start - b * ct if b == b0 else 0  # frames of chunk b in the crop: [lo, hi)
            hi = stop - b * ct if b == b1 else ct
            cid = row[b]
            if cid < 0:
                o[:, pos : pos + hi - lo] = index.fill
            elif cid >= n:
                raise OSError(f"{index.path}: shard shorter than its index says (truncated write?)")
            else:
                o[:, pos : pos + hi - lo] = chunks[cid, :, lo:hi]
            pos += hi - lo
    return out


_shipped_read_mapped = None


def patch_read_mapped(on: bool = True) -> None:
    """Switch ``mrnet.store.shardread._read_mapped`` to the proposal (or back)."""
    global _shipped_read_mapped
    from mrnet.store import shardread

    if _shipped_read_mapped is None:
        _shipped_read_mapped = shardread._read_mapped
    shardread._read_mapped = chunk_view_read if on else _shipped_read_mapped


# --- extraction -----------------------------------------------------------------------------------
def stub_model() -> None:
    """Replace the WavLM forward by one that returns at once (experiments only): what is left is the
    pipeline itself, decoding, resampling, stitching, casting and writing, so its throughput is the
    ceiling any model, however fast, can reach through it on this machine. The stub returns random
    (not zero) features of the right shape and dtype: Zarr skips all-zero chunks, which would flatter
    the writes."""
    import numpy as np

    from mrnet.extract.engines import WavLMEngine

    rng = np.random.default_rng(0)
    row = rng.standard_normal((1, 1, 4000, 1024), dtype=np.float32)  # cut to (frames, dim) per call

    def _forward(self, wave):
        frames = self.geometry.frames(wave.shape[1])
        block = row[:, :, :frames, : self.dim].astype(self.out_dtype)
        return np.broadcast_to(block, (wave.shape[0], len(self.layers), frames, self.dim))

    WavLMEngine._forward = _forward


def parallel_load(threads: int | None = None) -> None:
    """Proposed change to ``mrnet.extract.pipeline.process_unit``: decode a unit's tracks on a thread
    pool instead of one after another (libsndfile and libsoxr release the GIL). Everything else in
    the function is unchanged."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from mrnet.extract import executors, pipeline

    pool = ThreadPoolExecutor(threads or os.cpu_count() or 2, thread_name_prefix="mrnet-decode")
    shipped = pipeline._load

    def process_unit(unit, ctx):
        import time

        import numpy as np
        import polars as pl

        from mrnet.manifests.schema import TRACKS
        from mrnet.store import Location, Provenance, StoreWriter

        start = time.perf_counter()
        extractor = pipeline.worker_extractor(ctx)
        writer = StoreWriter(Location.parse(ctx.store, ctx.storage_options), Provenance.from_json(ctx.provenance, where=ctx.store))
        loaded = list(pool.map(lambda row: shipped(row, ctx, extractor), unit.rows))  # the one changed line
        rows, seconds, written = [], 0.0, 0
        budget = int(ctx.config["batch_size"]) * float(ctx.config["window_seconds"]) * 2
        for group in pipeline._groups(loaded, budget, extractor):
            feats = pipeline._features(group, extractor)
            for (row, data, info), result in zip(group, feats):
                if isinstance(result, Exception):
                    rows.append(dict(row, status="failed", error=str(result), **info))
                    continue
                crc = writer.write_track(row["key"], result)
                written += result.size * np.dtype(writer.provenance.dtype).itemsize
                seconds += result.shape[2] / writer.provenance.frame_rate
                rows.append(dict(row, status="done", error=None, frames=int(result.shape[2]), checksum=crc, **info))
        for row, data, info in loaded:
            if isinstance(data, Exception):
                rows.append(dict(row, status="failed", error=str(data), frames=None, checksum=None, **info))
        writer.commit_unit(unit.id, pl.DataFrame(rows, schema=TRACKS))
        return pipeline.UnitResult(unit.id, rows, seconds, written, time.perf_counter() - start)

    pipeline.process_unit = process_unit
    executors.process_unit = process_unit


def serial_model() -> None:
    """One WavLM forward at a time per process (experiments only). The in-process executor runs two
    units in threads so decoding and writing overlap the model; without a lock both threads may also
    run the model at once (two intra-op thread pools on the same CPU cores; two batches of activations
    on one GPU)."""
    from mrnet.extract.engines import WavLMEngine

    forward = WavLMEngine._forward
    lock = threading.Lock()

    def _forward(self, wave):
        with lock:
            return forward(self, wave)

    WavLMEngine._forward = _forward


def write_empty_chunks() -> None:
    """Proposed change to ``mrnet.store.writer.StoreWriter.write_track``: pass
    ``config={"write_empty_chunks": True}`` to ``zarr.create_array``. Zarr's default (False) compares
    every inner chunk with the fill value before writing it (``NDBuffer.all_equal``, a full extra pass
    over the data in Zarr's single event-loop thread) only to skip chunks that are all zeros, which
    features never are. Reading is unchanged (a skipped chunk reads as zeros, a written one as its
    zeros)."""
    import zarr

    from mrnet.store import writer

    create = zarr.create_array

    def create_array(*args, **kwargs):
        config = dict(kwargs.pop("config", None) or {})
        config.setdefault("write_empty_chunks", True)
        return create(*args, config=config, **kwargs)

    writer.zarr = _ZarrProxy(zarr, create_array)


class _ZarrProxy:
    """The ``zarr`` module with ``create_array`` replaced (for ``mrnet.store.writer`` only)."""

    def __init__(self, module, create_array):
        self._module, self.create_array = module, create_array

    def __getattr__(self, name):
        return getattr(self._module, name)


def mono_no_copy() -> None:
    """Proposed change to ``mrnet.extract.windows.run_windowed``: for a one-channel track, return the
    stitched array with a new leading axis (a view) instead of ``np.stack([it])`` (a full copy of the
    track's features). Everything else is the shipped function."""
    from collections import defaultdict

    import numpy as np

    from mrnet.extract import engines, windows

    def run_windowed(tracks, forward, *, geometry, window, batch_size):
        jobs = defaultdict(list)
        sizes = []
        for t, audio in enumerate(tracks):
            n = geometry.frames(audio.shape[1])
            if n < 1:
                raise ValueError(f"track {t}: {audio.shape[1]} samples is shorter than one frame ({geometry.receptive})")
            sizes.append(n)
            length = geometry.samples(min(n, window))
            for c in range(audio.shape[0]):
                for start in windows.plan(n, window=window):
                    jobs[length].append((t, c, start))
        parts = defaultdict(list)
        for length, items in jobs.items():
            for batch in windows._batches(items, batch_size):
                wave = np.stack([tracks[t][c, start * geometry.stride : start * geometry.stride + length] for t, c, start in batch])
                out = forward(wave)
                for (t, c, start), feats in zip(batch, out):
                    parts[(t, c)].append((start, feats))
        result = []
        for t, audio in enumerate(tracks):
            channels = [windows.stitch(parts[(t, c)], sizes[t]) for c in range(audio.shape[0])]
            result.append(channels[0][None] if len(channels) == 1 else np.stack(channels))  # the one changed line
        return result

    windows.run_windowed = run_windowed
    engines.run_windowed = run_windowed


def fixed_mmap_threshold(threshold: int = 128 * 1024) -> None:
    """Proposed for the start of ``mrnet-extract`` (and Dask workers): fix glibc's mmap threshold.

    glibc serves allocations above ``M_MMAP_THRESHOLD`` (128 kB) with their own ``mmap`` and returns
    them to the system on ``free``; but after the first such block is freed it raises the threshold to
    that block's size (up to 32 MB), so later feature arrays and tensors come from the heap arenas of
    the unit threads, where freed space fragments and is kept. Setting the threshold explicitly turns
    the adjustment off: large blocks always go back to the system, and memory follows what is live.
    """
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    M_MMAP_THRESHOLD = -3
    if libc.mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1:
        raise OSError("mallopt(M_MMAP_THRESHOLD) failed")


EXTRACTION_VARIANTS = {"stub-model": stub_model, "fixed-mmap-threshold": fixed_mmap_threshold, "parallel-load": parallel_load, "serial-model": serial_model,
                       "write-empty-chunks": write_empty_chunks, "mono-no-copy": mono_no_copy}


def apply_extraction(variant: str) -> None:
    """Apply ``+``-joined extraction variants in this process, e.g. ``stub-model+parallel-load``."""
    for name in variant.split("+"):
        if name not in EXTRACTION_VARIANTS:
            raise ValueError(f"unknown extraction variant {name!r}; known: {', '.join(EXTRACTION_VARIANTS)}")
        EXTRACTION_VARIANTS[name]()
