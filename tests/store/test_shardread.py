"""The fused crop reader returns exactly what Zarr returns, for every layout it accepts."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from mrnet.store import FeatureStore, Location, Provenance, StoreWriter, shardread
from mrnet.store.shardread import load_index, read_crop


def write(tmp_path, *, channels=1, layers=3, frames=257, chunk=50, codec="none", dtype="float16"):
    prov = Provenance(
        feature="wavlm",
        layers=list(range(layers)),
        dim=8,
        frame_rate=50.0,
        channels=channels,
        dtype=dtype,
        extraction={"chunk_frames": chunk, "codec": codec},
    )
    loc = Location.parse(f"{tmp_path}/s.zarr")
    data = np.random.default_rng(1).normal(size=(channels, layers, frames, 8)).astype(dtype)
    with StoreWriter.open(loc, prov) as writer:
        writer.write_track("t", data)
    return loc, data


@pytest.mark.parametrize("channels,dtype", [(1, "float16"), (2, "float16"), (1, "float32")])
def test_fast_crops_equal_zarr_crops(tmp_path, channels, dtype):
    loc, data = write(tmp_path, channels=channels, dtype=dtype)
    arr = zarr.open_array(loc.zarr_store(read_only=True), path="features/t", mode="r")
    index = load_index(loc, "t", arr)
    assert index is not None and index.chunk == (channels, 1, 50, 8)
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = int(rng.integers(0, 256))
        stop = int(rng.integers(start + 1, 258))
        layers = sorted(rng.choice(3, size=int(rng.integers(1, 4)), replace=False).tolist())
        got = read_crop(loc, index, start, stop, layers)
        assert got.dtype == np.dtype(dtype)
        assert np.array_equal(got, data[:, layers, start:stop]), (start, stop, layers)


def test_reader_uses_the_fast_path_only_for_plain_shards(tmp_path):
    loc, data = write(tmp_path, codec="none")
    store = FeatureStore.open(loc.url)
    assert np.array_equal(store.read("t", 10, 200, layers=[2, 0]), data[:, [2, 0], 10:200])
    assert store._indexes["t"] is not None
    loc2, data2 = write(tmp_path / "z", codec="zstd")
    store2 = FeatureStore.open(loc2.url)
    assert np.array_equal(store2.read("t", 10, 200), data2[:, :, 10:200])
    assert not store2._indexes["t"].plain  # compressed: the index is checked, Zarr decodes the data


def test_on_object_storage_reads_fetch_whole_chunks_and_merge_adjacent_ones(s3, monkeypatch):
    from mrnet.store import shardread

    _, bucket = s3
    loc, data = write(f"s3://{bucket}", frames=400, chunk=50)
    assert not loc.local
    arr = zarr.open_array(loc.zarr_store(read_only=True), path="features/t", mode="r")
    index = load_index(loc, "t", arr)
    seen = []
    real = shardread._fill
    monkeypatch.setattr(
        shardread,
        "_fill",
        lambda location, p, b, runs: seen.append([list(r) for r in runs]) or real(location, p, b, runs),
    )
    got = read_crop(loc, index, 60, 360, [0, 1, 2])  # 300 frames over 7 chunks per layer
    assert np.array_equal(got, data[:, :, 60:360])
    runs = seen[0]
    assert sum(len(chunks) for _, chunks, _ in runs) == 21 and len(runs) < 21  # Zarr's Morton order keeps some adjacent
    fetched, used = sum(size for _, _, size in runs), 3 * 300 * 8 * 2
    assert fetched / used == pytest.approx(350 / 300)  # read amplification: whole chunks only


def test_a_truncated_shard_is_an_error_not_garbage(tmp_path):
    loc, data = write(tmp_path)
    arr = zarr.open_array(loc.zarr_store(read_only=True), path="features/t", mode="r")
    index = load_index(loc, "t", arr)
    shard = tmp_path / "s.zarr" / "features" / "t" / "c" / "0" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:1000])
    shardread._mapped.cache_clear()
    with pytest.raises(OSError, match="shorter than its index"):
        read_crop(loc, index, 0, 250, [0, 1, 2])


def test_a_damaged_index_is_refused(tmp_path):
    loc, _ = write(tmp_path)
    shard = tmp_path / "s.zarr" / "features" / "t" / "c" / "0" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the index, before its checksum
    shard.write_bytes(bytes(raw))
    arr = zarr.open_array(loc.zarr_store(read_only=True), path="features/t", mode="r")
    with pytest.raises(OSError, match="index is damaged"):
        load_index(loc, "t", arr)


def test_chunk_by_chunk_fallback_reads_the_same(tmp_path, monkeypatch):
    """Shards whose chunks are not all whole and aligned take the chunk-by-chunk loop: same result."""
    loc, data = write(tmp_path, channels=2)
    arr = zarr.open_array(loc.zarr_store(read_only=True), path="features/t", mode="r")
    index = load_index(loc, "t", arr)
    fast = read_crop(loc, index, 13, 230, [2, 0])
    monkeypatch.setattr(shardread, "_chunk_view", lambda index: None)
    assert np.array_equal(read_crop(loc, index, 13, 230, [2, 0]), fast)
    assert np.array_equal(fast, data[:, [2, 0], 13:230])


def test_crops_of_a_track_whose_map_is_cached_skip_the_caches_lookup_and_a_dropped_map_is_mapped_again(
    tmp_path, monkeypatch
):
    """The map cache's lookup (hashing five arguments) cost every crop; the index's weak reference to its
    map replaces it while the map is cached, and does not keep a dropped map open."""
    loc, data = write(tmp_path)
    arr = zarr.open_array(loc.zarr_store(read_only=True), path="features/t", mode="r")
    index = load_index(loc, "t", arr)
    shardread._chunks.cache_clear()
    lookups = []
    cached = shardread._chunks

    def counted(*args):
        lookups.append(args)
        return cached(*args)

    monkeypatch.setattr(shardread, "_chunks", counted)
    for start in range(0, 200, 20):
        assert np.array_equal(read_crop(loc, index, start, start + 50, [1]), data[:, 1:2, start : start + 50])
    assert len(lookups) == 1
    cached.cache_clear()  # the cache dropped the map (more recent tracks): the weak reference dies with it
    assert index.__dict__["_held"]() is None
    assert np.array_equal(read_crop(loc, index, 0, 50, [0, 2]), data[:, [0, 2], 0:50])
    assert len(lookups) == 2
