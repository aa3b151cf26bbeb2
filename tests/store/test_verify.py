"""mrnet-store verify: damage of every kind is found, named, and fails the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrnet.store import FeatureStore, Location, StoreWriter
from mrnet.store import verify as verify_mod
from mrnet.store.cli import app
from mrnet.store.format import checksum
from mrnet.store.verify import verify_store
from tests.helpers import make_store
from tests.store.util import flip_byte, shard, small_store

KEY = "loud.001"


def problems(runner, store, *extra):
    result = runner.invoke(app, ["verify", str(store), "--json", *extra])
    return result.exit_code, json.loads(result.output)


def test_a_sound_store_verifies(runner, store):
    result = runner.invoke(app, ["verify", str(store), "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert "OK: 6 tracks checked" in result.output


def test_a_flipped_data_byte_is_a_checksum_mismatch(runner, store):
    flip_byte(Location.parse(store), shard(KEY), 1000)
    code, report = problems(runner, store)
    assert code == 1 and report["checked"] == 6
    [p] = report["problems"]
    assert (p["track_id"], p["key"]) == (KEY, KEY) and p["what"].startswith("checksum mismatch")


@pytest.mark.parametrize("codec", ["zstd", "blosc"])
def test_a_flipped_byte_in_a_compressed_shard_is_found(runner, tmp_path, codec):
    x = np.random.default_rng(0).normal(size=(1, 1, 250, 48)).astype(np.float16)
    loc = small_store(tmp_path / "z.zarr", {"t": x}, codec=codec)
    flip_byte(loc, shard("t"), 100)
    code, report = problems(runner, loc.url)
    [p] = report["problems"]
    assert code == 1 and p["key"] == "t"
    assert p["what"].startswith(("data unreadable", "checksum mismatch"))


def test_a_flipped_byte_in_the_shard_index_is_unreadable_data(runner, store):
    flip_byte(Location.parse(store), shard(KEY), -6)  # the index (with its crc32c) ends the shard
    code, report = problems(runner, store)
    [p] = report["problems"]
    assert code == 1 and p["key"] == KEY and p["what"].startswith("data unreadable") and "checksum" in p["what"]


def test_a_missing_shard_is_named(runner, store):
    Location.parse(store).remove(shard(KEY))
    result = runner.invoke(app, ["verify", str(store)])
    assert result.exit_code == 1
    assert KEY in result.output and "shard object missing" in result.output


def test_a_missing_array_is_named(runner, store):
    Location.parse(store).remove(f"features/{KEY}")
    code, report = problems(runner, store)
    assert code == 1
    assert [(p["track_id"], p["what"]) for p in report["problems"]] == [
        (KEY, f"array missing (no features/{KEY}/zarr.json)")
    ]


def test_a_wrong_shape_is_named(runner, store):
    prov = FeatureStore.open(store).provenance
    StoreWriter(Location.parse(store), prov).write_track(KEY, np.ones((1, 1, 7, 48), np.float16))
    code, report = problems(runner, store)
    [p] = report["problems"]
    assert code == 1 and p["key"] == KEY and p["what"].startswith("shape (1, 1, 7, 48)")


def test_store_level_problems_stop_before_the_tracks_and_orphans_are_notes(runner, store):
    loc = Location.parse(store)
    StoreWriter(loc, FeatureStore.open(store).provenance).write_track("stray", np.ones((1, 1, 5, 48)))
    code, report = problems(runner, store)
    assert code == 0 and "stray" in report["notes"][0]
    loc.remove("manifest/genres.parquet")
    code, report = problems(runner, store)
    assert code == 1 and report["checked"] == 0
    assert [p["what"] for p in report["problems"]] == ["manifest/genres.parquet missing (recorded in integrity.json)"]
    assert "tracks not checked" in report["notes"][0]


@pytest.mark.parametrize("channels, layers", [(1, 3), (2, 3)])
def test_streamed_checksum_equals_the_writers_checksum(tmp_path, monkeypatch, channels, layers):
    monkeypatch.setattr(verify_mod, "BLOCK_BYTES", 1)  # one layer per block: the most blocks
    make_store(tmp_path / "s.zarr", per_genre=1, channels=channels, layers=layers, feature="wavlm", dim=16)
    store = FeatureStore.open(tmp_path / "s.zarr")
    for key, crc in store.tracks.select("key", "checksum").iter_rows():
        arr = store.array(key)
        assert verify_mod.streamed_checksum(arr) == checksum(arr[...]) == crc
    assert verify_store(store.location, workers=2).ok


def test_an_unfinished_store_fails_but_its_journal_rows_are_checked(runner, store):
    for rel in ("manifest", "integrity.json"):  # killed before finalizing: neither is written yet
        Location.parse(store).remove(rel)
    code, report = problems(runner, store)
    assert code == 1 and report["checked"] == 6
    assert [p["what"].split(":")[0] for p in report["problems"]] == ["manifest/tracks.parquet missing"]


# --- single-bit flips anywhere a reader looks ------------------------------------------------------------
FLIPPED_FILES = [
    "zarr.json",
    "features/zarr.json",
    "manifest/tracks.parquet",
    "manifest/genres.parquet",
    "manifest/summary.json",
    "integrity.json",
    f"features/{KEY}/zarr.json",
    "shard",
]


@pytest.mark.parametrize("rel", FLIPPED_FILES)
def test_every_single_bit_flip_in_what_a_reader_uses_is_a_named_finding(runner, tmp_path, rel):
    """Seeded single-bit flips, one at a time: each fails verify (exit 1) with a finding, never a traceback
    and never 'OK'. Shard flips stay inside the first inner chunk and the index: the zero padding after
    a track's last frame is never read, so a flip there changes nothing a reader gets."""
    store = make_store(tmp_path / "s.zarr", per_genre=2)
    loc = Location.parse(store)
    target = shard(KEY) if rel == "shard" else rel
    original = loc.read_bytes(target)
    chunk_bytes = 100 * 48 * 2  # one inner chunk: 100 frames x 48 float16
    span = (
        list(range(chunk_bytes)) + list(range(len(original) - 4 - 16 * 4, len(original)))
        if rel == "shard"
        else range(len(original))
    )
    rng = np.random.default_rng(len(rel))
    for offset in rng.choice(list(span), size=12, replace=False):
        data = bytearray(original)
        data[offset] ^= 1 << int(rng.integers(8))
        loc.write_bytes(target, bytes(data))
        result = runner.invoke(app, ["verify", str(store), "--json"])
        assert result.exception is None or isinstance(result.exception, SystemExit), (offset, result.exception)
        report = json.loads(result.output)
        assert result.exit_code == 1 and report["problems"], f"a flip at byte {offset} of {target} went unnoticed"
    loc.write_bytes(target, original)
    assert runner.invoke(app, ["verify", str(store)]).exit_code == 0
