"""Batch order and loaders: shuffled epochs, equal-length evaluation batches, reading ahead on threads."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils.data import DataLoader

from mrnet.store import FeatureStore
from mrnet.train.augment import Augment
from mrnet.train.crops import TrackDataset
from mrnet.train.loader import EpochBatches, Prefetcher, collate, length_batches, loader_threads
from tests.train.util import dataset


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
    ds, _ = dataset(wavlm_store, crop=40, layer_positions=[0, 2], augment=Augment(noise_p=1.0))
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
