"""Proposed fixes, staged here so the benchmarks can measure them beside the shipped code.

Nothing in ``mrnet`` imports this module. Each proposal reproduces one change to the package as a
patch applied in a benchmark's own process (a child process, or restored afterwards), so a run
measures shipped and proposed code side by side on the same data; ``docs/performance.md`` gives the
exact change and the numbers. Once a proposal is applied to the package it is deleted from here;
its before/after record stays in ``benchmarks/results/history/`` and docs/performance.md (L2, W1 and
D1, applied in commit cc501f5, went that way).
"""

from __future__ import annotations

import threading


# --- extraction -----------------------------------------------------------------------------------
def stub_model() -> None:
    """Replace the WavLM forward by one that returns at once (experiments only): what is left is the
    pipeline itself, decoding, resampling, stitching, casting and writing, so its throughput is the
    ceiling any model, however fast, can reach through it on this machine. The stub returns random
    (not zero) features of the right shape and dtype: zeros would flatter any compressing codec."""
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
    pool instead of one after another (libsndfile and libsoxr release the GIL), i.e.
    ``loaded = list(pool.map(lambda row: _load(row, ctx, extractor), unit.rows))``. Emulated without
    copying the function: the wrapper decodes the unit's rows in parallel first, and ``_load`` then
    hands the shipped body those results."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from mrnet.extract import executors, pipeline

    pool = ThreadPoolExecutor(threads or os.cpu_count() or 2, thread_name_prefix="mrnet-decode")
    shipped_unit, shipped_load = pipeline.process_unit, pipeline._load
    ready: dict = {}

    def _load(row, ctx, extractor):
        found = ready.pop((id(ctx), row["path"]), None)
        return found if found is not None else shipped_load(row, ctx, extractor)

    def process_unit(unit, ctx):
        extractor = pipeline.worker_extractor(ctx)
        for row, got in zip(unit.rows, pool.map(lambda r: shipped_load(r, ctx, extractor), unit.rows)):
            ready[(id(ctx), row["path"])] = got
        return shipped_unit(unit, ctx)

    pipeline._load = _load
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


EXTRACTION_VARIANTS = {"stub-model": stub_model, "fixed-mmap-threshold": fixed_mmap_threshold,
                       "parallel-load": parallel_load, "serial-model": serial_model}


def apply_extraction(variant: str) -> None:
    """Apply ``+``-joined extraction variants in this process, e.g. ``stub-model+parallel-load``."""
    for name in variant.split("+"):
        if name not in EXTRACTION_VARIANTS:
            raise ValueError(f"unknown extraction variant {name!r}; known: {', '.join(EXTRACTION_VARIANTS)}")
        EXTRACTION_VARIANTS[name]()
