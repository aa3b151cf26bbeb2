"""Reading crops: missing or damaged data is an error naming the track, never zeros, on every codec."""

from __future__ import annotations

import numpy as np
import pytest

from mrnet.core.errors import UserError
from mrnet.store import FeatureStore, Location
from tests.store.util import shard, small_store

TRACK = np.random.default_rng(0).normal(size=(1, 1, 250, 48)).astype(np.float16)


@pytest.mark.parametrize("codec", ["none", "zstd", "blosc"])
@pytest.mark.parametrize("damage", ["deleted", "truncated", "index flipped"])
def test_a_damaged_shard_fails_the_read_naming_the_track(tmp_path, codec, damage):
    loc = small_store(tmp_path / f"{codec}.zarr", {"good": TRACK, "bad": TRACK}, codec=codec)
    path = tmp_path / f"{codec}.zarr" / shard("bad")
    data = path.read_bytes()
    if damage == "deleted":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    store = FeatureStore.open(loc)
    assert np.array_equal(store.read("good", 10, 60), TRACK[:, :, 10:60])
    with pytest.raises(UserError, match=r"track bad cannot be read .*missing or damaged: run mrnet-store verify"):
        store.read("bad", 10, 60)


def test_on_s3_a_deleted_shard_fails_the_read(s3):
    fs, bucket = s3
    loc = small_store(f"s3://{bucket}/z.zarr", {"good": TRACK, "bad": TRACK}, codec="zstd")
    fs.rm(f"{bucket}/z.zarr/{shard('bad')}")
    store = FeatureStore.open(Location.parse(loc.url))
    assert np.array_equal(store.read("good", 0, 20), TRACK[:, :, :20])
    with pytest.raises(UserError, match="track bad cannot be read"):
        store.read("bad", 0, 20)
