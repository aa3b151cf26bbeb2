"""Costs that must not grow with the number of tracks a process has read (found by ``python -m benchmarks.growth``)."""

from __future__ import annotations

import os

from mrnet.store import shardread
from mrnet.store.reader import FeatureStore
from mrnet.store.synthetic import synthetic_store


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reading_every_track_keeps_a_bounded_number_of_shards_open(tmp_path):
    """One epoch reads every training track once. Each shard's map (and the file descriptor it holds) used to stay
    open for as long as the reader kept the track's index, which is forever: an epoch over more tracks than the
    open-file limit (or the kernel's 65,530 maps) failed part-way, reported as damaged data."""
    store = FeatureStore.open(synthetic_store(tmp_path / "s.zarr", genres=("a", "b"), per_genre=150, frames=(20, 30),
                                              separable=False, with_statistics=False))
    shardread._mapped.cache_clear()
    shardread._chunks.cache_clear()
    before = _open_files()
    keys = store.tracks["key"].to_list()
    for key in keys:
        assert store.read(key, 2, 12).shape == (1, 1, 10, 48)
    assert len(keys) == 300
    assert _open_files() - before <= shardread._mapped.cache_info().maxsize + 4
    again = store.read(keys[0], 0, 20)  # a track whose map was dropped reads again
    assert again.shape == (1, 1, 20, 48)
