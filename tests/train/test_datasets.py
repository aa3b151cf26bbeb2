"""Crops and whole tracks read from a store: what training reads, and nothing more."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils.data import DataLoader

from mrnet.store import FeatureStore
from mrnet.train.augment import Augment
from mrnet.train.crops import EvalUnit, TrackDataset, track_targets
from mrnet.train.loader import EpochBatches, collate, worker_init
from tests.train.util import dataset


def test_crops_have_the_crop_shape_and_read_only_the_crop(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=100, layer_positions=[0, 2])
    x, label, plan = ds[(3, 5)]
    assert x.shape == (1, 2, 100, 16) and x.dtype == np.float16  # as stored: float32 only on the device
    assert label == tracks["label"][5] and plan is None
    ((key, start, stop, layers),) = recording
    assert key == tracks["key"][5] and stop - start == 100 and 0 <= start and stop <= tracks["frames"][5]
    assert layers == [0, 2]  # only the layers the model uses


def test_crop_matches_the_stored_frames(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=50, layer_positions=[1])
    x = ds[(0, 2)][0]
    _, start, stop, _ = recording[0]
    whole = FeatureStore.open(str(wavlm_store)).read(tracks["key"][2])
    np.testing.assert_array_equal(x, whole[:, 1:2, start:stop])


def test_crops_are_a_function_of_seed_epoch_and_track(wavlm_store, recording):
    ds, _ = dataset(wavlm_store, crop=60)
    np.testing.assert_array_equal(ds[(1, 4)][0], ds[(1, 4)][0])
    starts = {recording[i][1] for i in range(2)}
    assert len(starts) == 1
    ds[(2, 4)]
    assert recording[-1][1] != recording[0][1]  # another epoch, another crop (seeded, so this is stable)


def test_a_track_shorter_than_the_crop_is_repeated_not_read_beyond(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=1000)
    x = ds[(0, 0)][0]
    n = tracks["frames"][0]
    assert recording == [(tracks["key"][0], 0, n, [0])]
    assert x.shape[2] == 1000
    np.testing.assert_array_equal(x[:, :, n : 2 * n], x[:, :, :n][:, :, : min(n, 1000 - n)])


def test_evaluation_reads_whole_tracks(mel_store):
    store = FeatureStore.open(str(mel_store))
    tracks = store.tracks.filter(pl.col("split") == "test")
    ds = TrackDataset(store.location, tracks, [0])
    x, y = ds[1]
    assert x.shape == (1, 1, tracks["frames"][1], 48) and y == tracks["label"][1]


@pytest.mark.parametrize(
    "eval_unit",
    [EvalUnit("center", crop=40), EvalUnit("chunks", crop=30, chunks=4), EvalUnit("chunks", crop=1000, chunks=2)],
)
def test_evaluation_units_read_the_crops_they_name(mel_store, eval_unit):
    store = FeatureStore.open(str(mel_store))
    tracks = store.tracks.filter(pl.col("split") == "test")
    ds = TrackDataset(store.location, tracks, [0], eval_unit=eval_unit)
    x, y = ds[1]
    whole = store.read(tracks["key"][1])
    starts = eval_unit.starts(tracks["frames"][1])
    assert x.shape == (len(starts), 1, 1, eval_unit.crop, 48) and ds.lengths == [eval_unit.crop] * len(tracks)
    for crop, start in zip(x, starts):
        part = whole[:, :, start : start + eval_unit.crop]
        np.testing.assert_array_equal(crop[:, :, : part.shape[2]], part)  # a short track is then repeated
    batch = ds.__getitems__([0, 1])
    np.testing.assert_array_equal(batch.x[1].numpy(), x)
    assert batch.y.tolist() == tracks["label"][:2].to_list()


def test_multi_label_targets_are_multi_hot_rows():
    tracks = pl.DataFrame({"label": [None, None, None], "tags": [["b"], [], ["a", "c", "unkept"]]})
    targets = track_targets(tracks, ["a", "b", "c"])
    assert [t.tolist() for t in targets] == [[0, 1, 0], [0, 0, 0], [1, 0, 1]]
    batch = collate([(np.zeros((1, 1, 2, 3), np.float16), t) for t in targets])
    assert batch[1].dtype == torch.float32 and batch[1].shape == (3, 3)


def test_a_worker_opens_its_own_store(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=40)
    ds[(0, 0)]
    assert ds._store is not None
    state = ds.__getstate__()
    assert state["_store"] is None  # what a spawned worker receives: the location, not an open store
    batches = EpochBatches(len(ds), 4, seed=0, epoch=0)
    with_workers = list(
        DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=2, worker_init_fn=worker_init)
    )
    in_process = list(DataLoader(ds, batch_sampler=batches, collate_fn=collate))
    assert len(with_workers) == len(in_process) == 3
    for (xa, ya, _), (xb, yb, _) in zip(with_workers, in_process):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("crop", [60, 1000])  # 1000: longer than every track, so crops are tiled
def test_a_batch_read_in_place_equals_the_stacked_crops(wavlm_store, crop):
    ds, _ = dataset(wavlm_store, crop=crop, layer_positions=[2, 0], augment=Augment())
    items = [(3, i) for i in (5, 0, 7)]
    whole = ds.__getitems__(items)
    x, y, plan = collate([ds[i] for i in items])
    assert torch.equal(whole.x, x) and torch.equal(whole.y, y) and whole.x.dtype == torch.float16
    assert plan.keys() == whole.plan.keys() and all(torch.equal(plan[k], whole.plan[k]) for k in plan)
    assert collate(whole) == tuple(whole)  # the DataLoader's collate passes a finished batch through


def test_worker_batches_arrive_in_shared_memory_and_equal_in_process_ones(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=40, augment=Augment(noise_p=1.0))
    batches = EpochBatches(len(ds), 4, seed=0, epoch=1)
    with_workers = list(
        DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=2, worker_init_fn=worker_init)
    )
    in_process = list(DataLoader(ds, batch_sampler=batches, collate_fn=collate))
    assert all(xa.is_shared() for xa, _, _ in with_workers)
    for (xa, ya, pa), (xb, yb, pb) in zip(with_workers, in_process):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_read_into_a_given_array(wavlm_store):
    store = FeatureStore.open(str(wavlm_store))
    key = store.tracks["key"][0]
    out = np.zeros((1, 2, 30, 16), dtype=np.float16)
    assert store.read(key, 10, 40, [2, 1], out=out) is out
    assert np.array_equal(out, store.read(key, 10, 40, [2, 1]))
    with pytest.raises(ValueError, match="out is"):
        store.read(key, 10, 40, [2, 1], out=np.zeros((1, 2, 31, 16), dtype=np.float16))
