"""The operations the growth benchmark times, each called in a fresh child process (``benchmarks._child``).

Every function imports what it uses inside itself, so its ``seconds`` include the imports a command
pays, and returns ``{"seconds": ...}`` plus what it found (track counts, so a run that did nothing
is seen). Commands run their real command line in-process (the Typer app with those arguments,
output discarded), so the time includes what the command line adds to the library call.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path


def _quiet_cli(app, argv: list[str]) -> int:
    """Run a Typer app with ``argv``; its exit status (0 when it returned normally)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = app(argv, standalone_mode=False)
        except SystemExit as stop:
            code = stop.code
    return int(code or 0)


def scan(dataset: str, root: str) -> dict:
    """The dataset reader alone (``mrnet.extract.datasets.scan``): what every mrnet-extract starts with."""
    began = time.perf_counter()
    from mrnet.extract.datasets import scan as read

    found = read(dataset, Path(root))
    return {
        "seconds": time.perf_counter() - began,
        "tracks": found.tracks.height,
        "pending": int((found.tracks["status"] == "pending").sum()),
    }


def _timed_cli(command: str, app_name: str, argv: list[str]) -> dict:
    """``command ARGV`` through its Typer app (``module:attribute``), imports included; fails unless it exits 0."""
    import importlib

    began = time.perf_counter()
    module, attribute = app_name.split(":")
    code = _quiet_cli(getattr(importlib.import_module(module), attribute), argv)
    if code:
        raise RuntimeError(f"{command} {' '.join(argv)} exited with {code}")
    return {"seconds": time.perf_counter() - began}


def extract_cli(argv: list[str]) -> dict:
    """``mrnet-extract ARGV`` (``--dry-run``, or a run over a finished store: the resume check)."""
    return _timed_cli("mrnet-extract", "mrnet.extract.cli:app", argv)


def store_cli(argv: list[str]) -> dict:
    """``mrnet-store ARGV``; fails unless it exits 0 (verify: the store is intact)."""
    return _timed_cli("mrnet-store", "mrnet.store.cli:app", argv)


def predict_cli(argv: list[str]) -> dict:
    """``mrnet-predict ARGV`` (``RUN --store STORE --split test``): a run's predictions of a store's tracks."""
    return _timed_cli("mrnet-predict", "mrnet.train.cli:predict_app", argv)


def predicting_run(store: str, out: str) -> dict:
    """A finished run of the tiny preset (one epoch) on ``store``, for ``predict`` to use: made once, untimed."""
    import shutil

    if (Path(out) / "checkpoints" / "best.pt").exists():
        return {"seconds": 0.0}
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    from mrnet.train.loop import train
    from mrnet.train.presets import preset

    train(preset("tiny", store, out=out, batch_size=16, epochs=1, device="cpu", crop_seconds=0.5, test_curve=False))
    return {"seconds": time.perf_counter() - began}


def interrupt_copy(dst: str) -> dict:
    """Make a finished copy look like a ``cp`` killed after the tracks: no root, integrity record or manifest."""
    import shutil

    root = Path(dst)
    for rel in ("zarr.json", "integrity.json"):
        (root / rel).unlink(missing_ok=True)
    shutil.rmtree(root / "manifest", ignore_errors=True)
    return {"seconds": 0.0}


class _FirstBatch:
    """A training Reporter that notes when the first batch is done and then asks the run to stop."""

    def __init__(self, began: float):
        self.began, self.first = began, None

    def note(self, text):
        pass

    def start(self, **kw):
        self.started = time.perf_counter() - self.began

    def evaluation(self, **kw):
        pass

    def batch(self, **kw):
        if self.first is None:
            self.first, self.cpu = time.perf_counter() - self.began, time.process_time()

    def epoch(self, record):
        pass

    def end(self):
        pass


def first_batch(store: str, out: str, batch: int = 16) -> dict:
    """``mrnet-train --store STORE --preset tiny`` (one torch thread) from the call, imports included, to its
    first finished training batch; ``imports_s``: the imports alone (torch and the training package, which
    no store size changes); ``setup_s``: to the start of the training loop."""
    began = time.perf_counter()
    import torch

    from mrnet.train.loop import Interrupted, train
    from mrnet.train.presets import preset

    imported = time.perf_counter() - began

    torch.set_num_threads(1)  # as benchmarks.remote: other work on a shared machine stalls a two-thread step

    cfg = preset("tiny", store, out=out, batch_size=batch, epochs=1, device="cpu", crop_seconds=0.5)
    reporter = _FirstBatch(began)
    try:
        train(cfg, reporter=reporter, should_stop=lambda epoch, step: step >= 1)
    except Interrupted:
        pass
    if reporter.first is None:
        raise RuntimeError("training stopped before its first batch")
    return {"seconds": reporter.first, "cpu_s": reporter.cpu, "setup_s": reporter.started, "imports_s": imported}


def loader_epoch(store: str, batch: int = 16, threads: int | None = None) -> dict:
    """One epoch of the training loader over the training tracks (fold 0), no model: crops read, batched."""
    began = time.perf_counter()
    import torch

    from mrnet.store.reader import FeatureStore
    from mrnet.train.crops import CropDataset
    from mrnet.train.loader import EpochBatches, loader_threads, make_loader
    from mrnet.train.splits import split_tracks

    st = FeatureStore.open(store)
    train = split_tracks(st.tracks, fold=0).train
    data = CropDataset(st.location, train, [0], crop=32, seed=0)
    batches = EpochBatches(len(data), batch, seed=0, epoch=0)
    loader = make_loader(data, batches, num_workers=None, device=torch.device("cpu"), seed=0)
    crops = sum(len(b[0]) for b in loader)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "crops": crops,
        "crops_per_s": crops / seconds,
        "threads": threads or loader_threads(torch.device("cpu")),
        "open_files": len(os.listdir("/proc/self/fd")),
    }
