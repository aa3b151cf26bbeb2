"""Splits, crops and batches: what training reads from a store, and nothing more."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils.data import DataLoader

from mrnet.core.errors import UserError
from mrnet.store import FeatureStore, Location
from mrnet.manifests.schema import class_weights
from mrnet.train.augment import Augment, stack_plans
from mrnet.train.datasets import CropDataset, TrackDataset
from mrnet.train.loader import EpochBatches, Prefetcher, collate, length_batches, loader_threads, worker_init
from mrnet.train.loop import train_step
from mrnet.train.splits import fold_roles, split_tracks
from tests.helpers import make_store


class RecordingStore(FeatureStore):
    """A FeatureStore that records every ``read`` (key, start, stop, layers)."""

    calls: list = []

    def read(self, key, start=0, stop=None, layers=None, out=None):
        RecordingStore.calls.append((key, start, stop, None if layers is None else list(layers)))
        return super().read(key, start, stop, layers, out=out)


@pytest.fixture
def recording(monkeypatch):
    RecordingStore.calls = []
    monkeypatch.setattr("mrnet.train.datasets.FeatureStore", RecordingStore)
    return RecordingStore.calls


def dataset(store_path, crop, layers=(0,), split="train", **kw):
    store = FeatureStore.open(str(store_path))
    tracks = store.tracks.filter(pl.col("split") == split)
    return CropDataset(Location.parse(str(store_path)), tracks, list(layers), crop=crop, seed=0, **kw), tracks


def test_crops_have_the_crop_shape_and_read_only_the_crop(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=100, layers=[0, 2])
    x, label, plan = ds[(3, 5)]
    assert x.shape == (1, 2, 100, 16) and x.dtype == np.float16  # as stored: float32 only on the device
    assert label == tracks["label"][5] and plan is None
    (key, start, stop, layers), = recording
    assert key == tracks["key"][5] and stop - start == 100 and 0 <= start and stop <= tracks["frames"][5]
    assert layers == [0, 2]  # only the layers the model uses


def test_crop_matches_the_stored_frames(wavlm_store, recording):
    ds, tracks = dataset(wavlm_store, crop=50, layers=[1])
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
    for (xa, ya, _), (xb, yb, _) in zip(with_workers, in_process):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("crop", [60, 1000])  # 1000: longer than every track, so crops are tiled
def test_a_batch_read_in_place_equals_the_stacked_crops(wavlm_store, crop):
    ds, _ = dataset(wavlm_store, crop=crop, layers=[2, 0], augment=Augment())
    items = [(3, i) for i in (5, 0, 7)]
    whole = ds.__getitems__(items)
    x, y, plan = collate([ds[i] for i in items])
    assert torch.equal(whole.x, x) and torch.equal(whole.y, y) and whole.x.dtype == torch.float16
    assert plan.keys() == whole.plan.keys() and all(torch.equal(plan[k], whole.plan[k]) for k in plan)
    assert collate(whole) == tuple(whole)  # the DataLoader's collate passes a finished batch through


def test_worker_batches_arrive_in_shared_memory_and_equal_in_process_ones(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=40, augment=Augment(noise_p=1.0))
    batches = EpochBatches(len(ds), 4, seed=0, epoch=1)
    with_workers = list(DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=2, worker_init_fn=worker_init))
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


def augmented(ds, items):
    """The float32 batch a training step sees for ``items`` (collated, augmented on the CPU)."""
    x, _, plan = collate([ds[i] for i in items])
    return ds.augment.apply(x.float(), plan)


def test_augmentation_keeps_shape_changes_values_and_is_seeded(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=80, augment=Augment(noise_p=1.0))
    plain, _ = dataset(wavlm_store, crop=80)
    a, b = augmented(ds, [(0, 1)]), augmented(ds, [(0, 1)])
    c = torch.from_numpy(plain[(0, 1)][0]).float()[None]
    assert a.shape == c.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_a_sample_is_augmented_the_same_whatever_batch_it_is_in(wavlm_store):
    """Noise is seeded per sample, so batch composition and order (worker count, resume) change nothing."""
    ds, _ = dataset(wavlm_store, crop=80, augment=Augment(noise_p=1.0))
    alone = augmented(ds, [(0, 3)])[0]
    mixed = augmented(ds, [(0, 5), (0, 3), (0, 1)])[1]
    assert torch.equal(alone, mixed)
    assert not torch.equal(augmented(ds, [(1, 3)])[0], alone)  # another epoch, another draw


def test_augmentation_leaves_the_loaders_batch_untouched(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=80, augment=Augment(noise_p=1.0))
    x, _, plan = collate([ds[(0, i)] for i in range(3)])
    x32 = x.float()
    before = x32.clone()
    ds.augment.apply(x32, plan)
    assert torch.equal(x32, before)  # an in-memory batch reused across steps stays the same


def test_noise_scales_with_each_features_spread():
    aug = Augment(noise_p=1.0, time_masks=0, feature_masks=0)
    x = torch.randn(1, 1, 2, 4000, 3) * torch.tensor([0.1, 1.0, 10.0])
    out = aug.apply(x, stack_plans([aug.draw(np.random.default_rng(0), frames=4000, dim=3)]))
    ratio = (out - x).std(dim=3) / x.std(dim=3)  # noise std / feature std: sigma, the same for every feature
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=0.1)
    assert 0.04 < float(ratio.mean()) < 0.11


def test_feature_mask_fills_with_the_crop_mean():
    aug = Augment(noise_p=0.0, time_masks=0, feature_masks=1, feature_mask_frac=1.0)
    x = torch.arange(2 * 10 * 4, dtype=torch.float32).reshape(1, 1, 2, 10, 4)
    plan = stack_plans([aug.draw(np.random.default_rng(1), frames=10, dim=4)])
    start, width = plan["feature"][0, 0].tolist()
    out = aug.apply(x, plan)
    changed = torch.where((out != x).any(dim=(0, 1, 2, 3)))[0].tolist()
    assert width > 0 and changed == list(range(start, start + width))
    mean = x.mean(dim=3, keepdim=True).expand_as(x)
    assert torch.equal(out[..., changed], mean[..., changed])


def test_time_masks_fill_whole_frames():
    aug = Augment(noise_p=0.0, time_masks=2, time_mask_frac=0.3, feature_masks=0)
    x = torch.randn(1, 2, 3, 40, 5)
    plan = stack_plans([aug.draw(np.random.default_rng(4), frames=40, dim=5)])
    out = aug.apply(x, plan)
    frames = {t for s, w in plan["time"][0].tolist() for t in range(s, s + w)}
    assert frames
    changed = set(torch.where((out != x).any(dim=(0, 1, 2, 4)))[0].tolist())
    assert changed == frames


def test_train_step_takes_float16_batches_and_augments_on_its_device(wavlm_store):
    """The loop's own step: a float16 batch from the loader, converted and augmented where the model runs."""
    ds, _ = dataset(wavlm_store, crop=40, augment=Augment(noise_p=1.0))
    x, y, plan = collate([ds[(0, i)] for i in range(4)])
    assert x.dtype == torch.float16
    seen = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 3))
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_step(model, opt, None, x, y % 3, torch.device("cpu"), False, ds.augment, plan)
    assert seen[0].dtype == torch.float32
    assert torch.equal(seen[0], ds.augment.apply(x.float(), plan))


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


def test_loader_threads_are_2_on_cpu_and_half_the_cores_on_a_gpu(monkeypatch):
    assert loader_threads(torch.device("cpu")) == 2
    for cores, expect in ((2, 2), (16, 8), (64, 8), (10, 5)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert loader_threads(torch.device("cuda")) == expect


@pytest.mark.parametrize("threads", [1, 3])
def test_the_thread_prefetcher_gives_the_dataloaders_batches(wavlm_store, threads):
    ds, _ = dataset(wavlm_store, crop=40, layers=[0, 2], augment=Augment(noise_p=1.0))
    batches = list(EpochBatches(len(ds), 3, seed=0, epoch=2))
    ours = list(Prefetcher(ds, batches, threads=threads))
    theirs = list(DataLoader(ds, batch_sampler=batches, collate_fn=collate))
    assert len(ours) == len(theirs) == len(Prefetcher(ds, batches, threads=threads)) == 4
    for (xa, ya, pa), (xb, yb, pb) in zip(ours, theirs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_the_prefetcher_reads_whole_tracks_of_one_length(mel_store):
    store = FeatureStore.open(str(mel_store))
    tracks = store.tracks.filter(pl.col("split") == "train")
    ds = TrackDataset(store.location, tracks, [0])
    batches = length_batches(ds.frames, 4)
    for items, (x, y) in zip(batches, Prefetcher(ds, batches, threads=2)):
        assert torch.equal(x, torch.from_numpy(np.stack([ds[i][0] for i in items])))
        assert y.tolist() == [ds[i][1] for i in items]
    with pytest.raises(ValueError, match="one length"):
        ds.__getitems__([i for i in range(len(ds)) if ds.frames[i] != ds.frames[0]][:1] + [0])


def test_stopping_early_leaves_no_reader_threads_behind(wavlm_store):
    import threading

    ds, _ = dataset(wavlm_store, crop=40)
    batches = list(EpochBatches(len(ds), 2, seed=0, epoch=0))
    it = iter(Prefetcher(ds, batches, threads=2))
    next(it)
    it.close()  # what a loop that raises (Ctrl-C) does to the generator
    assert not [t for t in threading.enumerate() if t.name.startswith(("mrnet-read", "mrnet-batch"))]
