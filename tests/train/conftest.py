"""Fixtures for the training tests: small stores MRNet can learn from, and a tiny run config.

The stores come from ``tests.helpers.make_store``, whose genres differ by a signal that MRNet's
instance normalisation keeps: in each genre's band of features, one random time signal shared by
every feature of the band (features that move together).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mrnet.train.config import TrainConfig
from mrnet.train.presets import tiny
from tests.helpers import make_store

# Tiny tensors gain nothing from a second thread, and on a busy 2-core machine each op then waits for it.
torch.set_num_threads(1)


def learnable_store(path: Path | str, *, strength: float = 2.0, seed: int = 0, **kwargs) -> Path | str:
    """``make_store`` (same manifest, splits or folds) with features each genre can be told apart by; path or URL."""
    make_store(path, separable=True, strength=strength, seed=seed, **kwargs)
    return path


def small_config(store: Path, run: Path, **overrides) -> TrainConfig:
    """A model small enough for tests: C = 16, short crops, a few epochs, no workers, CPU. MRNet's options
    may be given by name (``dropout=0.0``), as the CLI's flags give them."""
    own = {k: overrides.pop(k) for k in ("width", "embed_dim", "variant", "drop_routes", "dropout") if k in overrides}
    small = {"width": 16, "embed_dim": 16} if overrides.get("model", "mrnet") == "mrnet" else {}
    options = {**small, **own, **overrides.pop("model_options", {})}
    base = dict(epochs=3, batch_size=8, crop_seconds=1.0, eval_batch_size=8, num_workers=0, device="cpu")
    return tiny(str(store), out=str(run), model_options=options, **(base | overrides))


@pytest.fixture
def recording(monkeypatch):
    """Every store read of the training datasets, recorded as (key, start, stop, layers)."""
    from tests.train.util import RecordingStore

    RecordingStore.calls = []
    monkeypatch.setattr("mrnet.train.crops.FeatureStore", RecordingStore)
    return RecordingStore.calls


@pytest.fixture(scope="session")
def mel_store(tmp_path_factory) -> Path:
    """3 genres x 6 tracks of 48-bin 'mel' features (2.5-3.5 s), official 4:1:1 split, learnable."""
    return learnable_store(tmp_path_factory.mktemp("stores") / "mel.zarr", frames=(160, 220))


@pytest.fixture(scope="session")
def fold_store(tmp_path_factory) -> Path:
    """3 genres x 6 tracks in 3 folds, no official split."""
    return learnable_store(tmp_path_factory.mktemp("stores") / "folds.zarr", splits=False, folds=3, frames=(160, 220))


@pytest.fixture(scope="session")
def wavlm_store(tmp_path_factory) -> Path:
    """A 'wavlm' store of 3 layers x 16 dims (only read, never predicted from)."""
    return learnable_store(tmp_path_factory.mktemp("stores") / "wavlm.zarr", feature="wavlm", layers=3, dim=16)


@pytest.fixture(scope="session")
def trained_run(mel_store, tmp_path_factory) -> Path:
    """A finished 2-epoch run on ``mel_store``, shared by the tests that only read a run (treat it as read-only)."""
    from mrnet.train.loop import train

    return train(small_config(mel_store, tmp_path_factory.mktemp("runs") / "mel-run", epochs=2, batch_size=4))
