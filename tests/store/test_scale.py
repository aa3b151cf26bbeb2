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


def test_a_local_listing_is_what_fsspec_lists_without_its_cost(tmp_path, monkeypatch):
    """``Location.files`` and ``du`` walk a local store with ``os.scandir`` (fsspec's walk cost ~0.2 ms of Python per
    folder, five folders per track: 10 s of ``mrnet-store info`` at 10,000 tracks); same result, and fsspec is not asked."""
    import fsspec

    from mrnet.store.location import Location

    loc = Location.parse(synthetic_store(tmp_path / "s.zarr", per_genre=3))
    root = loc.url
    expected = {p[len(root) + 1 :]: int(i["size"]) for p, i in fsspec.filesystem("file").find(root, detail=True).items()}
    monkeypatch.setattr(type(loc.fs), "find", lambda *a, **k: (_ for _ in ()).throw(AssertionError("fsspec walked the store")))
    assert loc.files() == expected and len(expected) > 20
    assert loc.files("features") == {k: v for k, v in expected.items() if k.startswith("features/")}
    assert loc.du() == sum(expected.values())
    assert Location.parse(tmp_path / "none.zarr").files() == {} and Location.parse(tmp_path / "none.zarr").du() == 0
