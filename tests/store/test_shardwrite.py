"""The fused shard writer makes ordinary Zarr arrays: Zarr reads them back exactly, with Zarr's own metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from mrnet.core.files import is_temporary
from mrnet.store import FeatureStore, Location, Provenance, StoreWriter
from mrnet.store.shardread import load_index
from mrnet.store.shardwrite import write_shard_array


def provenance(*, channels=1, layers=3, dim=8, chunk=50, codec="none", dtype="float16"):
    return Provenance(
        feature="wavlm",
        layers=list(range(layers)),
        dim=dim,
        frame_rate=50.0,
        channels=channels,
        dtype=dtype,
        extraction={"chunk_frames": chunk, "codec": codec},
    )


def features(shape, dtype, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def zarr_array(loc, name):
    return zarr.open_array(loc.zarr_store(read_only=True), path=name, mode="r")


@pytest.mark.parametrize(
    "channels,layers,frames,dtype",
    [
        (1, 3, 257, "float16"),  # last chunk of each layer padded
        (1, 13, 300, "float16"),  # whole chunks only
        (2, 2, 123, "float16"),  # stereo: each chunk is two slices of the track
        (1, 1, 7, "float32"),  # shorter than one chunk
    ],
)
def test_zarr_reads_back_exactly_what_was_written(tmp_path, channels, layers, frames, dtype):
    loc = Location.parse(f"{tmp_path}/s.zarr")
    data = features((channels, layers, frames, 8), dtype)
    write_shard_array(loc, "features/t", data, 50)
    arr = zarr_array(loc, "features/t")
    assert arr.shape == data.shape and arr.dtype == np.dtype(dtype)
    assert np.array_equal(arr[...], data)  # Zarr's own decoding path, index CRC-32C included
    assert np.array_equal(arr[:, 1 % layers, 40:60], data[:, 1 % layers, 40:60])  # a partial read


def test_metadata_is_what_zarr_writes_for_the_same_array(tmp_path):
    fused, plain = Location.parse(f"{tmp_path}/a.zarr"), Location.parse(f"{tmp_path}/b.zarr")
    data = features((2, 3, 257, 8), "float16")
    write_shard_array(fused, "features/t", data, 50)
    zarr.create_array(
        plain.zarr_store(),
        name="features/t",
        shape=data.shape,
        dtype="float16",
        chunks=(2, 1, 50, 8),
        shards=(2, 3, 300, 8),
        compressors=None,
        dimension_names=("channel", "layer", "frame", "dim"),
        config={"write_empty_chunks": True},
    )[...] = data
    read = lambda loc: json.loads(loc.read_bytes("features/t/zarr.json"))  # noqa: E731
    assert read(fused) == read(plain)
    assert sorted(fused.files("features/t")) == sorted(plain.files("features/t"))  # same objects: zarr.json, one shard


def test_the_fused_reader_takes_its_fast_path_on_fused_shards(tmp_path):
    loc = Location.parse(f"{tmp_path}/s.zarr")
    writer = StoreWriter.open(loc, provenance())
    data = features((1, 3, 257, 8), "float16")
    writer.write_track("t", data)
    index = load_index(loc, "t", zarr_array(loc, "features/t"))
    assert index is not None and index.table[0, :, :, 0, 1].tolist() == [[800] * 6] * 3
    store = FeatureStore.open(loc.url)
    assert np.array_equal(store.read("t", 33, 251, layers=[2, 0]), data[:, [2, 0], 33:251])


def test_a_rewritten_track_reads_the_new_data_and_leaves_no_temporary_files(tmp_path):
    loc = Location.parse(f"{tmp_path}/s.zarr")
    writer = StoreWriter.open(loc, provenance())
    writer.write_track("t", features((1, 3, 120, 8), "float16", seed=1))
    new = features((1, 3, 120, 8), "float16", seed=2)
    writer.write_track("t", new)
    assert np.array_equal(zarr_array(loc, "features/t")[...], new)
    assert not [name for name in loc.files("features/t") if is_temporary(name)]


def test_compressed_stores_keep_zarrs_write_path(tmp_path, monkeypatch):
    from mrnet.store import writer as writer_module

    calls = []
    monkeypatch.setattr(writer_module, "write_shard_array", lambda *a, **k: calls.append(a))
    loc = Location.parse(f"{tmp_path}/s.zarr")
    data = features((1, 2, 90, 8), "float16")
    with StoreWriter.open(loc, provenance(layers=2, codec="zstd")) as writer:
        writer.write_track("t", data)
    assert calls == [] and np.array_equal(zarr_array(loc, "features/t")[...], data)


def test_on_object_storage_a_track_is_two_requests(s3, caplog):
    """Counted at the S3 server (moto, in this process): the shard and its metadata, one PUT each."""
    _, bucket = s3
    loc = Location.parse(f"s3://{bucket}/s.zarr")
    writer = StoreWriter.open(loc, provenance())
    data = features((1, 3, 257, 8), "float16")
    caplog.clear()
    with caplog.at_level("INFO", logger="werkzeug"):
        writer.write_track("t", data)
    requests = [r.getMessage().split('"')[1] for r in caplog.records if r.name == "werkzeug" and '"' in r.getMessage()]
    assert [r.split()[0] + " " + r.split()[1].rsplit("/t/", 1)[-1] for r in requests] == [
        "PUT c/0/0/0/0",
        "PUT zarr.json",
    ]
    assert np.array_equal(FeatureStore.open(loc.url).read("t"), data)
