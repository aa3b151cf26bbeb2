"""Stores on S3, against a real S3-compatible HTTP server (moto, on 127.0.0.1; see conftest.py).

Write by URL, read back, and run info / verify / ls / cp both ways, configured the two supported ways:
the standard AWS variables (``AWS_ENDPOINT_URL`` ...) and fsspec storage options as JSON.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from mrnet.core.errors import UserError
from mrnet.manifests.schema import TRACKS
from mrnet.store import FeatureStore, Location, Provenance, StoreWriter
from mrnet.store import copy as copy_mod
from mrnet.store.cli import app
from mrnet.store.copy import copy_store
from tests.helpers import make_store
from tests.store.util import flip_byte, new_bucket, shard, stored


@pytest.fixture(scope="module")
def shared(s3_env) -> str:
    """The ``store`` fixture's data written by URL to s3://<bucket>/x.zarr (same seed), once; read only."""
    _, bucket = new_bucket()
    make_store(f"s3://{bucket}/x.zarr", per_genre=2)
    return f"s3://{bucket}/x.zarr"


@pytest.fixture
def s3_store(s3) -> str:
    """A smaller store (3 tracks) in a bucket of its own, for tests that change or damage it."""
    _, bucket = s3
    make_store(f"s3://{bucket}/x.zarr", per_genre=1)
    return f"s3://{bucket}/x.zarr"


def test_a_store_written_by_url_reads_back_equal(shared, store):
    remote, local = FeatureStore.open(shared), FeatureStore.open(store)
    assert remote.provenance == local.provenance and remote.finalized
    assert remote.tracks.equals(local.tracks) and remote.genres.equals(local.genres)
    for key in remote.tracks["key"]:
        assert np.array_equal(remote.read(key, 17, 317), local.read(key, 17, 317))
        assert np.array_equal(remote.read(key, 0, 100, layers=[0]), local.read(key, 0, 100, layers=[0]))


@pytest.mark.slow
def test_writer_reopens_checks_and_overwrites_on_s3(s3_store):
    loc = Location.parse(s3_store)
    stored = FeatureStore.open(loc).provenance
    with StoreWriter.open(loc, stored) as again:
        assert again.provenance == stored  # resume: same settings
    other = Provenance(**(stored.to_json() | {"dim": 8}))
    with pytest.raises(UserError, match="dim: store has 48"):
        StoreWriter.open(loc, other)
    with StoreWriter.open(loc, other, overwrite=True) as writer:
        writer.write_track("t", np.ones((1, 1, 5, 8)))
    assert loc.listdir("features") == ["t", "zarr.json"]
    assert FeatureStore.open(loc).provenance.dim == 8 and not FeatureStore.open(loc).finalized


def test_journal_listing_sees_units_other_workers_commit(s3, s3_endpoint):
    _, bucket = s3
    url, prov = f"s3://{bucket}/j.zarr", Provenance("mel", [0], 48, 62.5, 1)
    reader = StoreWriter.open(Location.parse(url), prov)
    reader.close()
    other = StoreWriter(
        Location.parse(url, {"endpoint_url": s3_endpoint}), prov
    )  # a worker: its own S3 client, no lock
    for unit in ("0000", "0001", "0002"):
        row = dict.fromkeys(TRACKS.names()) | {"track_id": f"t{unit}", "key": f"t{unit}", "status": "failed"}
        other.commit_unit(unit, pl.DataFrame([row], schema=TRACKS))
        assert reader.journal()["track_id"].to_list()[-1] == f"t{unit}"  # a fresh listing, not a cached one


def test_info_verify_ls_by_url(runner, shared):
    bucket = shared.split("/")[2]
    info = json.loads(runner.invoke(app, ["info", shared, "--json"]).output)
    assert info["counts"]["done"] == 6 and info["size_bytes"] > 0 and info["store"] == shared
    result = runner.invoke(app, ["verify", shared, "--workers", "4"])
    assert result.exit_code == 0 and "OK: 6 tracks checked" in result.output, result.output
    listed = json.loads(runner.invoke(app, ["ls", f"s3://{bucket}/", "--json"]).output)
    assert [(s["name"], s["tracks"], s["size_bytes"]) for s in listed] == [("x.zarr", 6, info["size_bytes"])]


@pytest.mark.slow
def test_verify_names_damage_on_s3(runner, s3_store):
    loc = Location.parse(s3_store)
    flip_byte(loc, shard("calm.000"), 500)
    loc.remove(shard("mid.000"))
    result = runner.invoke(app, ["verify", s3_store, "--json"])
    assert result.exit_code == 1
    found = {p["key"]: p["what"] for p in json.loads(result.output)["problems"]}
    assert found["calm.000"].startswith("checksum mismatch")
    assert found["mid.000"].startswith("shard object missing")


def test_cp_local_to_s3_and_back(runner, store, s3, tmp_path):
    _, bucket = s3
    up = runner.invoke(app, ["cp", str(store), f"s3://{bucket}/team/", "--verify"])
    assert up.exit_code == 0 and "OK: 6 tracks checked" in up.output, up.output
    down = runner.invoke(app, ["cp", f"s3://{bucket}/team/local.zarr", str(tmp_path / "back.zarr"), "--verify"])
    assert down.exit_code == 0 and "OK: 6 tracks checked" in down.output, down.output
    assert stored(Location.parse(tmp_path / "back.zarr")) == stored(Location.parse(store))


def test_an_interrupted_upload_resumes(store, s3, monkeypatch):
    _, bucket = s3
    src, dst = Location.parse(store), Location.parse(f"s3://{bucket}/up.zarr")
    real, calls = copy_mod.copy_object, []

    def dies_after_four(*args):
        if len(calls) == 4:
            raise ConnectionError("network gone")
        calls.append(args[2])
        real(*args)

    monkeypatch.setattr(copy_mod, "copy_object", dies_after_four)
    with pytest.raises(ConnectionError):
        copy_store(src, dst, workers=1)
    with pytest.raises(UserError, match="not a feature store"):
        FeatureStore.open(dst)
    monkeypatch.setattr(copy_mod, "copy_object", real)
    assert copy_store(src, dst).skipped == 4
    assert stored(dst) == stored(src)


def test_storage_options_instead_of_aws_variables(runner, shared, monkeypatch, s3_endpoint):
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    result = runner.invoke(app, ["info", shared, "--json", "--storage-options", json.dumps(options)])
    assert result.exit_code == 0 and json.loads(result.output)["counts"]["done"] == 6, result.output
    monkeypatch.setenv("MRNET_STORAGE_OPTIONS", json.dumps(options))
    assert FeatureStore.open(shared).read("calm.000", 0, 10).shape == (1, 1, 10, 48)
    assert runner.invoke(app, ["verify", shared]).exit_code == 0


def test_an_unreachable_endpoint_is_a_message_not_a_traceback(runner):
    options = {"endpoint_url": "http://127.0.0.1:9", "config_kwargs": {"retries": {"max_attempts": 1}}}
    result = runner.invoke(app, ["info", "s3://nowhere/x.zarr", "--storage-options", json.dumps(options)])
    assert result.exit_code == 2
    assert "Could not connect" in result.output and "--storage-options" in result.output


# --- containment: no key from a bucket leaves its root -------------------------------------------------
ESCAPING = "features/../../../escaped.txt"


def plant_escaping_object(fs, url: str) -> None:
    """An object whose key walks out of the store (``x.zarr/features/../../../escaped.txt``), put with the
    raw S3 API so nothing on the way normalises the key."""
    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    fs.call_s3("put_object", Bucket=bucket, Key=f"{prefix}/{ESCAPING}", Body=b"not part of a store")


def test_a_key_leaving_the_root_is_refused_by_cp_and_named_by_verify(runner, s3, s3_store, tmp_path):
    fs, _ = s3
    plant_escaping_object(fs, s3_store)
    dest = tmp_path / "dest"
    dest.mkdir()
    result = runner.invoke(app, ["cp", s3_store, f"{dest}/"])
    assert (
        result.exit_code == 2 and "would leave the store's root; refused" in result.output and ESCAPING in result.output
    )
    assert (
        not list(tmp_path.rglob("escaped.txt")) and not (dest / "x.zarr").exists()
    )  # nothing written, nothing outside
    report = runner.invoke(app, ["verify", s3_store, "--json"])
    problems = json.loads(report.output)["problems"]
    assert report.exit_code == 1 and any(
        ESCAPING in p["what"] and "leaves the store's root" in p["what"] for p in problems
    )


def test_a_manifest_key_leaving_the_root_is_refused_on_read(tmp_path):
    store = FeatureStore.open(make_store(tmp_path / "s.zarr", per_genre=1))
    with pytest.raises(UserError, match=r"'features/\.\./\.\./outside' would leave the store's root"):
        store.read("../../outside", 0, 10)
