"""Proposed fixes, staged here so the benchmarks can measure them beside the shipped code.

Nothing in ``mrnet`` imports this module. Each proposal reproduces one change to the package as a
patch applied in a benchmark's own process (a child process, or restored afterwards), so a run
measures shipped and proposed code side by side on the same data; ``docs/performance.md`` gives the
exact change and the numbers. Once a proposal is applied to the package it is deleted from here;
its before/after record stays in ``benchmarks/results/history/`` and docs/performance.md (L2, W1 and
D1, applied in commit cc501f5, went that way). The reverse also lives here: the code as it was
before an applied change (``zarr_writer``, ``serial_io``), so its before and after are measured side
by side in every run.
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


# --- the code as it was, for side-by-side before/after measurements of applied changes -------------
def zarr_writer() -> None:
    """``StoreWriter.write_track`` as it was before W2 (commit a578783): every track through Zarr's
    codec pipeline (``zarr.create_array(...)[...] = data``), finiteness by ``np.isfinite``."""
    import numpy as np
    import zarr

    from mrnet.store import writer

    def write_shard_array(location, name, data, chunk_frames):
        channels, layers, frames, dim = data.shape
        zarr.create_array(location.zarr_store(), name=name, shape=data.shape, dtype=data.dtype, chunks=(channels, 1, chunk_frames, dim),
                          shards=(channels, layers, -(-frames // chunk_frames) * chunk_frames, dim), compressors=None,
                          dimension_names=("channel", "layer", "frame", "dim"), overwrite=True,
                          config={"write_empty_chunks": True})[...] = data

    writer.write_shard_array = write_shard_array
    writer.all_finite = lambda array: bool(np.isfinite(array).all())


def serial_io() -> None:
    """``process_unit`` as it was before its I/O pool (commit a891e56): each unit decodes its tracks one
    after another and writes them one after another, in the unit's own thread."""
    from concurrent.futures import ThreadPoolExecutor

    from mrnet.extract import pipeline

    class _Inline(ThreadPoolExecutor):  # runs every task in the caller's thread
        def __init__(self):
            super().__init__(1)

        def map(self, fn, *iterables, **kw):
            return [fn(*args) for args in zip(*iterables)]

        def submit(self, fn, *args, **kw):
            from concurrent.futures import Future

            future = Future()
            try:
                future.set_result(fn(*args, **kw))
            except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(err)
            return future

    inline = _Inline()
    pipeline.io_pool = lambda threads=0, processes=1: inline


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


def per_item_batches(dataset_cls):
    """``CropDataset`` as it was before in-place batches (IO2, commit 3d1c9a4..): the DataLoader
    fetches one crop per item and ``collate`` stacks them (a copy), which a worker then moves to shared
    memory (another copy). Returns a subclass; nothing is patched."""

    class PerItem(dataset_cls):
        __getitems__ = None  # the DataLoader's fetcher then calls __getitem__ per item

    return PerItem


EXTRACTION_VARIANTS = {"stub-model": stub_model, "fixed-mmap-threshold": fixed_mmap_threshold, "serial-model": serial_model,
                       "zarr-writer": zarr_writer, "serial-io": serial_io}


def apply_extraction(variant: str) -> None:
    """Apply ``+``-joined extraction variants in this process, e.g. ``stub-model+serial-io``."""
    for name in variant.split("+"):
        if name not in EXTRACTION_VARIANTS:
            raise ValueError(f"unknown extraction variant {name!r}; known: {', '.join(EXTRACTION_VARIANTS)}")
        EXTRACTION_VARIANTS[name]()
