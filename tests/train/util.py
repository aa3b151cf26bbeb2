"""Helpers for the training data tests: a store that records its reads, and a crop dataset over a split."""

from __future__ import annotations

import polars as pl

from mrnet.store import FeatureStore, Location
from mrnet.train.crops import CropDataset


class RecordingStore(FeatureStore):
    """A FeatureStore that records every ``read`` (key, start, stop, layers)."""

    calls: list = []

    def read(self, key, start=0, stop=None, layers=None, out=None):
        RecordingStore.calls.append((key, start, stop, None if layers is None else list(layers)))
        return super().read(key, start, stop, layers, out=out)


def dataset(store_path, crop, layer_positions=(0,), split="train", **kw):
    """A ``CropDataset`` over one split of the store at ``store_path``, and that split's tracks."""
    store = FeatureStore.open(str(store_path))
    tracks = store.tracks.filter(pl.col("split") == split)
    return CropDataset(Location.parse(str(store_path)), tracks, list(layer_positions), crop=crop, seed=0, **kw), tracks
