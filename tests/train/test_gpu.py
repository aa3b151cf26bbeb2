"""Training on CUDA; run with `pytest -m gpu` on a machine with CUDA (skipped elsewhere)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from mrnet.store import FeatureStore, Location
from mrnet.train.augment import Augment
from mrnet.train.crops import CropDataset
from mrnet.train.loader import collate
from mrnet.train.loop import train
from mrnet.train.runs import RunFolder
from tests.train.conftest import small_config

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def crops(store_path, items, augment):
    store = FeatureStore.open(str(store_path))
    tracks = store.tracks.filter(pl.col("split") == "train")
    ds = CropDataset(Location.parse(str(store_path)), tracks, [0, 1, 2], crop=80, seed=0, augment=augment)
    return collate([ds[i] for i in items])


def test_augmentation_on_the_gpu_is_seeded_per_sample_and_leaves_its_input(wavlm_store):
    aug = Augment(noise_p=1.0)
    x, _, plan = crops(wavlm_store, [(0, 5), (0, 3), (0, 1)], aug)
    x = x.cuda().float()
    before = x.clone()
    a, b = aug.apply(x, plan), aug.apply(x, plan)
    assert a.device.type == "cuda" and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(x, before)
    alone_x, _, alone_plan = crops(wavlm_store, [(0, 3)], aug)
    assert torch.equal(aug.apply(alone_x.cuda().float(), alone_plan)[0], a[1])  # same sample, same noise, any batch
    ratio = ((a - x).std(dim=3) / x.std(dim=3).clamp_min(1e-6)).mean().item()  # noise std relative to each feature's
    assert 0.03 < ratio < 0.12


@pytest.mark.parametrize("num_workers", [None, 2], ids=["reading-threads", "worker-processes"])
def test_training_runs_on_the_gpu_with_bf16(mel_store, tmp_path, num_workers):
    cfg = small_config(
        mel_store, tmp_path / "run", epochs=2, batch_size=4, device="cuda", bf16=True, num_workers=num_workers
    )
    run = RunFolder(train(cfg))
    lines = [json.loads(line) for line in run.metrics_file.read_text().splitlines()]
    assert len(lines) == 2 and all(np.isfinite(r["train_loss"]) for r in lines)
    assert run.report()["test"]["accuracy"] >= 0.0
