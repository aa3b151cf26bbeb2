"""Training never trains on data its store does not vouch for (issue 21, items 5 and 13): each track's
checksum is checked the first time a process reads it (``--check-reads``), and damaged feature statistics are named."""

from __future__ import annotations

import os

import pytest

from mrnet.core.errors import UserError
from mrnet.store import FeatureStore
from tests.helpers import make_store
from tests.train.test_cli import bad

SHARD = ("c", "0", "0", "0", "0")


def test_a_flipped_byte_in_a_shard_stops_training_naming_the_track(tmp_path):
    store = make_store(tmp_path / "s.zarr", frames=(400, 400))
    shard = store.joinpath("features", "calm.000", *SHARD)
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF  # inside the first inner chunk: the shard index (at the end) is intact
    shard.write_bytes(bytes(data))
    message = bad("--store", store, "--out", tmp_path / "run", "--check-reads")
    assert "track calm.000 does not match its checksum" in message and f"mrnet-store verify {store}" in message


def test_two_tracks_shards_swapped_stop_training_instead_of_swapping_labels(tmp_path):
    store = make_store(tmp_path / "s.zarr", frames=(400, 400))  # every track the same shape
    a, b = (store.joinpath("features", key, *SHARD) for key in ("calm.000", "loud.000"))
    swap = a.with_name("swap")
    os.replace(a, swap), os.replace(b, a), os.replace(swap, b)
    message = bad("--store", store, "--out", tmp_path / "run", "--check-reads")
    assert "does not match its checksum in the manifest" in message and "mrnet-store verify" in message


def test_reads_are_checked_once_per_track_and_can_be_turned_off(tmp_path):
    store = make_store(tmp_path / "s.zarr", per_genre=1)
    shard = store.joinpath("features", "mid.000", *SHARD)
    data = bytearray(shard.read_bytes())
    data[500] ^= 0x01
    shard.write_bytes(bytes(data))
    checked = FeatureStore.open(store, check_reads=True)
    assert checked.read("calm.000", 0, 10).shape == (1, 1, 10, 48)
    with pytest.raises(UserError, match="track mid.000 does not match its checksum"):
        checked.read("mid.000", 200, 210)
    assert FeatureStore.open(store).read("mid.000", 0, 10).shape == (
        1,
        1,
        10,
        48,
    )  # off by default (its cost: docs/reliability.md)


@pytest.mark.parametrize("damage", ["not json", "field changed", "arrays changed"])
def test_damaged_statistics_are_named_in_training_with_the_fix(tmp_path, damage):
    store = make_store(tmp_path / "s.zarr")
    index, arrays = store / "manifest" / "statistics.json", store / "manifest" / "statistics.npz"
    if damage == "not json":
        index.write_bytes(index.read_bytes()[:-10])
    elif damage == "field changed":
        index.write_text(index.read_text().replace('"checksum"', '"checksun"'))
    else:
        data = bytearray(arrays.read_bytes())
        data[len(data) // 2] ^= 0xFF
        arrays.write_bytes(bytes(data))
    message = bad("--store", store, "--out", tmp_path / "run", "--normalize", "stored")
    assert "manifest/statistics" in message and f"mrnet-store stats {store}" in message
