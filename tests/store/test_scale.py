"""Costs that must not grow with the number of tracks a process has read (found by ``python -m benchmarks.growth``)."""

from __future__ import annotations

import math
import os

from mrnet.store import layout, shardread
from mrnet.store.reader import FeatureStore
from mrnet.store.synthetic import synthetic_store


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reading_every_track_keeps_a_bounded_number_of_shards_open(tmp_path):
    """One epoch reads every training track once. Each shard's map (and the file descriptor it holds) used to stay
    open for as long as the reader kept the track's index, which is forever: an epoch over more tracks than the
    open-file limit (or the kernel's 65,530 maps) failed part-way, reported as damaged data."""
    store = FeatureStore.open(
        synthetic_store(
            tmp_path / "s.zarr",
            genres=("a", "b"),
            per_genre=150,
            frames=(20, 30),
            separable=False,
            with_statistics=False,
        )
    )
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
    expected = {
        p[len(root) + 1 :]: int(i["size"]) for p, i in fsspec.filesystem("file").find(root, detail=True).items()
    }
    monkeypatch.setattr(
        type(loc.fs), "find", lambda *a, **k: (_ for _ in ()).throw(AssertionError("fsspec walked the store"))
    )
    assert loc.files() == expected and len(expected) > 20
    assert loc.files("features") == {k: v for k, v in expected.items() if k.startswith("features/")}
    assert loc.du() == sum(expected.values())
    assert Location.parse(tmp_path / "none.zarr").files() == {} and Location.parse(tmp_path / "none.zarr").du() == 0


def test_statistics_work_out_each_group_once_not_once_per_track(tmp_path, monkeypatch):
    """``training_part`` (``--normalize stored``) and ``combine_units`` (finalize) built a Python dict per manifest row:
    90 s on a million-row manifest, growing faster than the rows. Now a group is worked out once per distinct
    (split, fold, labelled), however many tracks share it."""
    import numpy as np
    import polars as pl

    from mrnet.store import statistics
    from mrnet.store.location import Location

    n = 5000
    tracks = pl.DataFrame(
        {
            "track_id": [f"t{i:05d}" for i in range(n)],
            "split": [("train", "valid", "test")[i % 3] for i in range(n)],
            "fold": [None] * n,
            "label": [i % 4 for i in range(n)],
            "status": ["done"] * n,
            "frames": [10] * n,
        },
        schema_overrides={"fold": pl.Int16, "label": pl.Int32},
    )
    keys = [statistics.track_group(r) for r in tracks.iter_rows(named=True)]
    groups = {k: statistics.Sums(10 * keys.count(k), np.zeros((1, 1, 2)), np.zeros((1, 1, 2))) for k in set(keys)}
    loc = Location.parse(tmp_path / "s.zarr")
    loc.write_bytes("progress/0000.parquet", b"")
    loc.write_bytes(
        statistics.unit_file("0000"),
        statistics._npz(groups, {"track_ids": np.array(tracks["track_id"].to_list()), "track_groups": np.array(keys)}),
    )
    calls = []
    real = statistics.group_key
    monkeypatch.setattr(statistics, "group_key", lambda *a: calls.append(a) or real(*a))
    total, used = statistics.training_part(groups, tracks.filter(pl.col("split") == "train"))
    combined, why = statistics.combine_units(loc, tracks)
    assert total.count == 10 * tracks.filter(pl.col("split") == "train").height and len(used) == 1
    assert combined is not None and sum(s.count for s in combined.values()) == 10 * n, why
    assert len(calls) <= 2 * len(groups)


class _Touched(list):
    """Sorted keys that count how many of them are looked at (each item got, each item of a slice taken)."""

    touched = 0

    def __getitem__(self, index):
        got = super().__getitem__(index)
        self.touched += len(got) if isinstance(index, slice) else 1
        return got


def _store_keys(tracks: int) -> list[str]:
    keys = ["zarr.json", "features/zarr.json", "manifest/tracks.parquet"]
    for i in range(tracks):
        keys += [f"features/t{i:06d}/zarr.json", f"features/t{i:06d}/c/0/0/0/0", f"progress/u{i // 16:05d}.parquet"]
    return sorted(set(keys))


def test_finding_keys_that_are_also_folders_looks_at_a_few_keys_per_key():
    """``verify`` and ``cp`` look for an object key that is also a folder (``a/b`` beside ``a/b/c``). Scanning the sorted
    keys behind each key copied that tail: quadratic, what made ``verify`` and ``cp`` bend on FMA-large's 106,574
    tracks (``python -m benchmarks.growth``; docs/performance.md). A binary search per key looks at about log2(n) keys, at any size."""
    for tracks in (300, 3000):
        keys = _Touched(_store_keys(tracks))
        assert layout.clashes_in(keys) == []
        assert keys.touched <= len(keys) * (math.log2(len(keys)) + 2), (tracks, keys.touched / len(keys))


def test_keys_that_are_also_folders_are_all_found():
    """The same pairs as comparing every key with every other, on keys that sort between a key and its folder."""
    keys = ["a/b", "a/b-x", "a/b.y", "a/b/c", "a/b/d", "a/bc/e", "a/bc", "m", "m/n/o", "m/n", "z/"]
    every = sorted(
        (k, min(o for o in keys if o.startswith(k + "/"))) for k in keys if any(o.startswith(k + "/") for o in keys)
    )
    assert layout.prefix_clashes(keys) == every
    assert every == [("a/b", "a/b/c"), ("a/bc", "a/bc/e"), ("m", "m/n"), ("m/n", "m/n/o")]
