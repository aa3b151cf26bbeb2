"""A distant object store is read with as many requests in flight as its round trip asks for.

Through the fault proxy with a fixed 20 ms delay and no faults, the proxy counts the most requests it
held at once: that count, not a timing, shows a client's concurrency (before the fix: 4 verify workers,
2 loader threads and one batch at a time, and botocore's pool of 10 connections)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from mrnet.store import location as location_module
from mrnet.store.cli import app as store_app
from mrnet.store.copy import copy_store
from mrnet.store.location import MAX_IN_FLIGHT, Location
from mrnet.store.reader import FeatureStore
from mrnet.store.synthetic import synthetic_store
from mrnet.train.crops import CropDataset
from mrnet.train.loader import EpochBatches, make_loader, reading_plan
from tests.store.faults import FaultProxy
from tests.store.util import new_bucket


@pytest.fixture
def distant(tmp_path, s3_env, s3_endpoint, monkeypatch):
    """A 60-track store on the test S3 server, and a proxy adding 20 ms to every request in front of it."""
    _, bucket = new_bucket()
    url = f"s3://{bucket}/s.zarr"
    local = synthetic_store(tmp_path / "s.zarr", per_genre=20, frames=(20, 30))
    copy_store(Location.parse(local), Location.parse(url), workers=16)
    with FaultProxy(s3_endpoint, errors=0.0, resets=0.0, latency=0.0, delay=0.02) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setattr(location_module, "_FS_CACHE", {})  # clients made from here on go through the proxy
        if hasattr(location_module, "_ZARR_CACHE"):
            monkeypatch.setattr(location_module, "_ZARR_CACHE", {})
        yield url, proxy


def test_the_round_trip_sizes_the_requests_in_flight_and_the_connection_pool(distant):
    url, _ = distant
    loc = Location.parse(url)
    assert loc.round_trip() >= 0.02
    assert 20 <= loc.concurrency(4) <= MAX_IN_FLIGHT
    assert Location.parse("/tmp/x.zarr").concurrency(4) == 4
    assert loc.fs.config_kwargs["max_pool_connections"] == MAX_IN_FLIGHT


@pytest.mark.slow
def test_verify_of_a_distant_store_keeps_many_requests_in_flight(distant):
    url, proxy = distant
    result = CliRunner().invoke(store_app, ["verify", url])
    assert result.exit_code == 0 and "OK: 60 tracks checked" in result.output, result.output
    assert proxy.counts["peak_in_flight"] >= 16, proxy.counts


@pytest.mark.slow
def test_training_reads_a_distant_store_several_batches_at_once(distant):
    url, proxy = distant
    store = FeatureStore.open(url)
    plan = reading_plan(store.location, 2, 8)
    assert plan["threads"] >= 20 and plan["concurrent"] >= 3 and plan["depth"] == plan["concurrent"] + 1
    data = CropDataset(store.location, store.tracks, [0], crop=16, seed=0)
    loader = make_loader(
        data, EpochBatches(len(data), 8, seed=0, epoch=0), num_workers=None, device=torch.device("cpu"), seed=0
    )
    local = CropDataset(
        Location.parse(store.location.url.replace("s3://", "/nonexistent/")), store.tracks, [0], crop=16, seed=0
    )
    assert reading_plan(local.location, 2, 8) == {"threads": 2, "depth": 2, "concurrent": 1}
    batches = [x for x, _, _ in loader]
    assert len(batches) == 7 and all(x.shape == (8, 1, 1, 16, 48) for x in batches)
    assert proxy.counts["peak_in_flight"] >= 16, proxy.counts
