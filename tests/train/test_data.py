"""Splits, crops and batches: what training reads from a store, and nothing more."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils.data import DataLoader

from mrnet.store import FeatureStore, Location, UserError
from mrnet.manifests.schema import class_weights
from mrnet.train.data import (Augment, CropDataset, EpochBatches, TrackDataset, collate, fold_roles, length_batches,
                              split_tracks, worker_init)
from tests.helpers import make_store


class RecordingStore(FeatureStore):
    """A FeatureStore that records every ``read`` (key, start, stop, layers)."""

    calls: list = []

    def read(self, key, start=0, stop=None, layers=None):
        RecordingStore.calls.append((key, start, stop, None if layers is None else list(layers)))
        return super().read(key, start, stop, layers)


@pytest.fixture
def recording(monkeypatch):
    RecordingStore.calls = []
    monkeypatch.setattr("mrnet.train.data.FeatureStore", RecordingStore)
    return RecordingStore.calls


def dataset(store_path, crop, layers=(0,), split="train", **kw):
    store = FeatureStore.open(str(store_path))
    tracks = store.tracks.filter(pl.col("split") == split)
    return CropDataset(Location.parse(str(store_path)), tracks, list(layers), crop=crop, seed=0, **kw), tracks


def test_crops_have_the_crop_shape_and_read_only_the_crop(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=100, layers=[0, 2])
    x, label = ds[(3, 5)]
    assert x.shape == (1, 2, 100, 16) and x.dtype == np.float32
    assert label == tracks["label"][5]
    (key, start, stop, layers), = recording
    assert key == tracks["key"][5] and stop - start == 100 and 0 <= start and stop <= tracks["frames"][5]
    assert layers == [0, 2]  # only the layers the model uses


def test_crop_matches_the_stored_frames(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=50, layers=[1])
    x, _ = ds[(0, 2)]
    _, start, stop, _ = recording[0]
    whole = FeatureStore.open(str(wavlm_store)).read(tracks["key"][2])
    np.testing.assert_array_equal(x, whole[:, 1:2, start:stop].astype(np.float32))


def test_crops_are_a_function_of_seed_epoch_and_track(wavlm_store, recording):
    ds, _ = dataset(wavlm_store, crop=60)
    np.testing.assert_array_equal(ds[(1, 4)][0], ds[(1, 4)][0])
    starts = {recording[i][1] for i in range(2)}
    assert len(starts) == 1
    ds[(2, 4)]
    assert recording[-1][1] != recording[0][1]  # another epoch, another crop (seeded, so this is stable)


def test_a_track_shorter_than_the_crop_is_repeated_not_read_beyond(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=1000)
    x, _ = ds[(0, 0)]
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


def test_a_worker_opens_its_own_store(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=40)
    ds[(0, 0)]
    assert ds._store is not None
    state = ds.__getstate__()
    assert state["_store"] is None  # what a spawned worker receives: the location, not an open store
    batches = EpochBatches(len(ds), 4, seed=0, epoch=0)
    with_workers = list(DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=2, worker_init_fn=worker_init))
    in_process = list(DataLoader(ds, batch_sampler=batches, collate_fn=collate))
    assert len(with_workers) == len(in_process) == 3
    for (xa, ya), (xb, yb) in zip(with_workers, in_process):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_augmentation_keeps_shape_changes_values_and_is_seeded(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=80, augment=Augment(noise_p=1.0))
    plain, _ = dataset(wavlm_store, crop=80)
    a, b, c = ds[(0, 1)][0], ds[(0, 1)][0], plain[(0, 1)][0]
    assert a.shape == c.shape
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_feature_mask_fills_with_the_crop_mean():
    x = np.arange(2 * 10 * 4, dtype=np.float32).reshape(1, 2, 10, 4)
    out = Augment(noise_p=0.0, time_masks=0, feature_masks=1, feature_mask_frac=1.0)(x, np.random.default_rng(1))
    changed = np.where((out != x).any(axis=(0, 1, 2)))[0]
    assert changed.tolist() == [1, 2, 3]  # seed 1 masks features 1..3
    np.testing.assert_allclose(out[..., changed], np.broadcast_to(x.mean(axis=2, keepdims=True)[..., changed], out[..., changed].shape))


# --- splits ---------------------------------------------------------------------------------------


def test_official_split(mel_store):
    splits = split_tracks(FeatureStore.open(str(mel_store)).tracks)
    assert splits.sizes() == {"train": 12, "valid": 3, "test": 3}
    assert splits.description == "official split"


@pytest.mark.parametrize("k", [3, 5, 10])
def test_kfold_roles_cover_every_fold_without_overlap(tmp_path, k):
    store = FeatureStore.open(str(make_store(tmp_path / "s.zarr", splits=False, folds=k, per_genre=k)))
    seen_test = set()
    for fold in range(k):
        s = split_tracks(store.tracks, fold=fold)
        test_f, valid_f = set(s.test["fold"]), set(s.valid["fold"])
        assert test_f == {fold} and valid_f == {(fold + 1) % k} and test_f != valid_f
        ids = [set(p["track_id"]) for p in (s.train, s.valid, s.test)]
        assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
        assert sum(map(len, ids)) == store.tracks.height
        assert set(s.train["fold"]) == set(range(k)) - test_f - valid_f
        seen_test |= test_f
    assert seen_test == set(range(k))
    assert fold_roles(k - 1, k) == (k - 1, 0)


def test_two_folds_leave_no_training_fold(tmp_path):
    store = FeatureStore.open(str(make_store(tmp_path / "s.zarr", splits=False, folds=2)))
    with pytest.raises(UserError, match="training split is empty.*at least 3 folds"):
        split_tracks(store.tracks, fold=0)


def test_fold_out_of_range_and_folds_on_an_official_split(mel_store, fold_store):
    with pytest.raises(UserError, match="--fold 7: .* has folds 0..2"):
        split_tracks(FeatureStore.open(str(fold_store)).tracks, fold=7)
    with pytest.raises(UserError, match="has no folds"):
        split_tracks(FeatureStore.open(str(mel_store)).tracks, fold=0)
    with pytest.raises(UserError, match="no official train/valid/test split; pass --fold K or --folds all"):
        split_tracks(FeatureStore.open(str(fold_store)).tracks)


def test_failed_and_unlabelled_tracks_are_left_out(mel_store):
    tracks = FeatureStore.open(str(mel_store)).tracks
    tracks = tracks.with_columns(
        pl.when(pl.col("track_id") == "calm.000").then(pl.lit("failed")).otherwise(pl.col("status")).alias("status"),
        pl.when(pl.col("track_id") == "loud.000").then(None).otherwise(pl.col("label")).alias("label"),
    )
    assert split_tracks(tracks).train.height == 10


def test_one_class_is_refused(tmp_path):
    store = FeatureStore.open(str(make_store(tmp_path / "s.zarr", genres=("only",))))
    with pytest.raises(UserError, match="training split has 1 class"):
        split_tracks(store.tracks)


def test_class_weights_come_from_the_training_split():
    train = pl.DataFrame({"label": [0, 0, 0, 0, 1, 1, 2]}, schema={"label": pl.Int32})
    assert class_weights(train, 4) == [1.0, 2.0, 4.0, 0.0]


# --- batches --------------------------------------------------------------------------------------


def test_epoch_batches_shuffle_per_epoch_and_skip_for_resume():
    a, b = list(EpochBatches(20, 6, seed=1, epoch=0)), list(EpochBatches(20, 6, seed=1, epoch=1))
    assert [len(x) for x in a] == [6, 6, 6]  # the last partial batch is dropped
    assert a != b and all(e == 0 for batch in a for e, _ in batch)
    assert list(EpochBatches(20, 6, seed=1, epoch=0, skip=2)) == a[2:]
    assert [len(x) for x in EpochBatches(5, 48, seed=0, epoch=0)] == [5]  # fewer tracks than a batch: one batch


def test_length_batches_never_mix_lengths():
    frames = [300, 301, 300, 299, 300, 301]
    batches = length_batches(frames, 2)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len({frames[i] for i in b}) == 1 and len(b) <= 2 for b in batches)
