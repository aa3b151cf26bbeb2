"""Reads from S3 through obstore (``store/objects.py``): the same bytes as s3fs, for the locations it can take,
never in a process forked after it ran, and s3fs for everything it cannot take."""

from __future__ import annotations

import os
import pickle
import signal
import time

import numpy as np
import pytest

from mrnet.core.errors import UserError, as_user_error
from mrnet.store import FeatureStore, Location, objects
from mrnet.store import location as location_module
from mrnet.store.copy import copy_store
from mrnet.store.lock import LOCK
from mrnet.store.objects import CLIENT_ENV, s3_settings
from tests.helpers import make_store
from tests.store.util import new_bucket, shard


@pytest.fixture(scope="module")
def remote(s3_env) -> str:
    _, bucket = new_bucket()
    make_store(f"s3://{bucket}/x.zarr", per_genre=2)
    return f"s3://{bucket}/x.zarr"


def everything(url: str, storage_options: dict | None = None) -> dict:
    """What a reader gets from a store: its metadata, a whole object, a crop of every track, a shard's tail."""
    store = FeatureStore.open(url, storage_options=storage_options)
    loc = store.location
    keys = list(store.tracks["key"])
    return {
        "client": type(loc.objects).__name__,
        "provenance": store.provenance.to_json(),
        "tracks": store.tracks.to_dicts(),
        "crops": [store.read(k, 11, 211).tobytes() for k in keys] + [store.read(keys[0], 3, 70, layers=[0]).tobytes()],
        "tail": bytes(loc.read_tail(loc.path(shard(keys[0])), 20)),
    }


def test_obstore_and_s3fs_read_the_same_bytes(remote, monkeypatch):
    fast = everything(remote)
    monkeypatch.setenv(CLIENT_ENV, "s3fs")
    slow = everything(remote)
    assert fast.pop("client") == "Objects" and slow.pop("client") == "NoneType"
    assert fast == slow


def test_a_copy_to_local_disk_is_the_same_through_either_client(remote, tmp_path, monkeypatch):
    fast = copy_store(Location.parse(remote), Location.parse(tmp_path / "a.zarr"))
    monkeypatch.setenv(CLIENT_ENV, "s3fs")
    slow = copy_store(Location.parse(remote), Location.parse(tmp_path / "b.zarr"))
    assert fast.copied == slow.copied > 10
    a, b = Location.parse(tmp_path / "a.zarr"), Location.parse(tmp_path / "b.zarr")
    files = {rel: size for rel, size in a.files().items() if rel != LOCK}  # the lock names its holder and time
    assert files == {rel: size for rel, size in b.files().items() if rel != LOCK}
    assert all(a.read_bytes(rel) == b.read_bytes(rel) for rel in files)


@pytest.mark.parametrize("client", ["obstore", pytest.param("s3fs", marks=pytest.mark.slow)])  # botocore retries: 10 s
def test_a_store_that_stops_answering_mid_run_is_named_as_unreachable_not_damaged(remote, monkeypatch, client):
    """A crop read when the server cannot be reached any more: no "missing or damaged, run verify" (the
    store is fine), no traceback (s3fs's ranges used to come back as exceptions taken for bytes)."""
    if client == "s3fs":
        monkeypatch.setenv(CLIENT_ENV, "s3fs")
    store = FeatureStore.open(remote)
    key = store.tracks["key"][0]
    store.read(key, 0, 10)  # the track is open: its metadata and shard index are kept
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # clients made from here on reach nothing
    monkeypatch.setattr(location_module, "_FS_CACHE", {})
    with pytest.raises(Exception) as caught:
        store.read(key, 20, 60)
    named = as_user_error(caught.value)
    assert named is not None and "could not be reached" in str(named) and "127.0.0.1:1" in str(named)


def test_storage_options_with_keys_and_endpoint_read_through_obstore(remote, s3_endpoint, monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    got = everything(remote, options)
    assert got["client"] == "Objects"
    monkeypatch.setenv(CLIENT_ENV, "s3fs")
    assert everything(remote, options) == got | {"client": "NoneType"}


def test_a_missing_object_and_a_shard_cut_short_are_errors(s3, monkeypatch):
    _, bucket = s3
    url = f"s3://{bucket}/x.zarr"
    make_store(url, per_genre=1)
    loc = Location.parse(url)
    assert loc.objects is not None
    with pytest.raises(FileNotFoundError):
        loc.read_bytes("manifest/nothing.json")
    store = FeatureStore.open(url)
    key = store.tracks["key"][0]
    store.read(key, 0, 10)  # its index is read and kept
    whole = loc.read_bytes(shard(key))
    loc.write_bytes(shard(key), whole[:200])
    with pytest.raises(UserError, match="shorter than its index"):
        store.read(key, 0, 250)  # the first range starts inside what is left
    with pytest.raises(UserError, match="Range Not Satisfiable"):
        store.read(key, 150, 250)  # every range starts past the end


@pytest.mark.parametrize(
    "options,env,takes",
    [
        ({}, {}, True),
        ({"client_kwargs": {"region_name": "eu-west-1"}}, {}, True),
        ({"anon": True}, {}, True),
        ({"requester_pays": True}, {}, False),  # an s3fs option obstore is not given: s3fs reads
        ({"config_kwargs": {"s3": {"addressing_style": "virtual"}}}, {}, False),
        ({}, {CLIENT_ENV: "s3fs"}, False),
        (
            {},
            {"AWS_ENDPOINT_URL": None},
            False,
        ),  # AWS, and S3 does not say the bucket's region: s3fs follows redirects
        (
            {},
            {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"},
            False,
        ),
    ],
)
def test_which_locations_obstore_takes(s3_env, monkeypatch, options, env, takes):
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no region or profile from this machine's ~/.aws
    monkeypatch.setattr(objects, "bucket_region", lambda bucket: None)  # no network here
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    settings = s3_settings("s3://bucket/x.zarr", options)
    assert (settings is not None) == takes, settings
    if settings and "region_name" in str(options):
        assert settings[1]["region"] == "eu-west-1"
    assert s3_settings("gs://bucket/x.zarr", options) is None


def test_on_aws_the_bucket_says_its_region(s3_env, monkeypatch):
    """obstore does not follow S3's redirect to a bucket's region, so it is given the region S3 names."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setattr(objects, "bucket_region", lambda bucket: {"eu-bucket": "eu-central-1"}.get(bucket))
    settings = s3_settings("s3://eu-bucket/x.zarr", {})
    assert settings is not None and settings[1] == {"region": "eu-central-1"}  # not the configured us-east-1
    assert s3_settings("s3://unknown/x.zarr", {}) is None


@pytest.mark.parametrize("status", [200, 301, 403])
def test_bucket_region_reads_the_header_of_any_answer(status):
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(status)
            self.send_header("x-amz-bucket-region", "ap-southeast-2")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{{bucket}}"
        assert objects.bucket_region("b", url=url) == "ap-southeast-2"
    finally:
        server.shutdown()
        server.server_close()
    assert objects.bucket_region("b", url=url, timeout=2) is None  # nothing answers: s3fs reads


def test_the_profiles_endpoint_is_used_and_endpoints_per_service_are_left_to_s3fs(s3_env, tmp_path, monkeypatch):
    """A custom endpoint set only in ~/.aws/config must not send obstore's requests to AWS instead."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\nendpoint_url = http://minio.lab:9000\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    settings = s3_settings("s3://bucket/x.zarr", {})
    assert settings is not None and settings[1] == {"region": "eu-west-1", "endpoint": "http://minio.lab:9000"}
    config.write_text(
        "[default]\nregion = eu-west-1\nservices = lab\n\n[services lab]\ns3 =\n  endpoint_url = http://s3.lab\n"
    )
    assert s3_settings("s3://bucket/x.zarr", {}) is None


def test_a_child_forked_after_obstore_ran_reads_through_s3fs(remote):
    """obstore's runtime does not survive a fork: a child that used it would hang (a DataLoader worker)."""
    loc = Location.parse(remote)
    store = FeatureStore.open(remote)
    key = store.tracks["key"][0]
    expected = store.read(key, 5, 105)
    assert loc.objects is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report which client read, and what
        try:
            child = FeatureStore.open(remote)
            os.write(write, pickle.dumps((type(child.location.objects).__name__, child.read(key, 5, 105))))
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG)[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung reading the store")
        time.sleep(0.05)
    with os.fdopen(read, "rb") as f:
        client, got = pickle.loads(f.read())
    assert client == "NoneType" and np.array_equal(got, expected)
    assert objects._used  # the parent goes on with obstore
