"""Requests an object store is asked per crop and per track: a tested number, not a timing.

On object storage each request waits a round trip, and a server answers a bounded number of them a
second (the local S3 server here: 200-280 small GETs a second on a quiet 2-core machine, a few dozen on a
busy one, see docs/performance.md), so a read's speed is its request count. Through the fault proxy (no faults, no
delay) every request the client sends is counted. Before the fix, opening a track's array asked six
times (Zarr probing its v2 ``.zarray``/``.zattrs``, each absent one with a listing, and a HEAD before
each whole-object GET): 9 requests per crop of a first epoch, 11 per track of ``verify``.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch
from typer.testing import CliRunner

from mrnet.store import location as location_module
from mrnet.store.cli import app as store_app
from mrnet.store.copy import copy_store
from mrnet.store.location import Location
from mrnet.store.objects import CLIENT_ENV
from mrnet.store.reader import FeatureStore
from mrnet.store.synthetic import synthetic_store
from mrnet.train.crops import CropDataset
from mrnet.train.loader import EpochBatches, make_loader
from tests.store.faults import FaultProxy
from tests.store.util import new_bucket

TRACKS = 60


@pytest.fixture(params=["obstore", "s3fs"])
def counted(request, tmp_path, s3_env, s3_endpoint, monkeypatch):
    """A 60-track store on the test S3 server, read through a proxy that records every request, by each of
    the two clients that read S3 (``store/objects.py``)."""
    _, bucket = new_bucket()
    url = f"s3://{bucket}/s.zarr"
    local = synthetic_store(tmp_path / "s.zarr", per_genre=TRACKS // 3, frames=(60, 90))
    copy_store(Location.parse(local), Location.parse(url), workers=16)
    with FaultProxy(s3_endpoint, errors=0.0, resets=0.0, latency=0.0, delay=0.0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setattr(location_module, "_FS_CACHE", {})  # clients made from here on go through the proxy
        monkeypatch.setattr(location_module, "_ZARR_CACHE", {})
        if request.param == "s3fs":
            monkeypatch.setenv(CLIENT_ENV, "s3fs")
        assert (Location.parse(url).objects is not None) == (request.param == "obstore")
        yield url, proxy


def kinds(seen: list[tuple[str, str, str]]) -> Counter:
    """Requests by (method, what they ask for): a track's ``zarr.json``, its shard, or anything else by its path."""
    out: Counter = Counter()
    for method, path, _ in seen:
        path = path.split("?")[0]
        what = "track zarr.json" if re.search(r"/features/[^/]+/zarr\.json$", path) else None
        what = what or ("shard" if re.search(r"/features/[^/]+/c/", path) else path.split(".zarr", 1)[-1] or "listing")
        out[method, what] += 1
    return out


def test_a_crop_costs_one_request_and_a_track_read_first_two_more(counted):
    url, proxy = counted
    store = FeatureStore.open(url)
    data = CropDataset(store.location, store.tracks, [0], crop=16, seed=0)
    per_epoch = []
    for epoch in range(2):
        before = len(proxy.seen)
        loader = make_loader(
            data, EpochBatches(len(data), 8, seed=0, epoch=epoch), num_workers=None, device=torch.device("cpu"), seed=0
        )
        crops = sum(len(x) for x, _, _ in loader)
        per_epoch.append((crops, kinds(proxy.seen[before:])))
    (crops, first), (_, second) = per_epoch
    opened = first["GET", "track zarr.json"]
    assert crops == 56 and 50 <= opened <= TRACKS, first
    # a track read first: its metadata (one GET), its shard index (one ranged GET), then each crop one ranged GET
    assert first["GET", "shard"] == opened + crops, first
    assert not [k for k in first if k[0] == "HEAD" and k[1] in ("track zarr.json", "shard")], first
    assert not [k for k in first if k[1].endswith((".zarray", ".zattrs")) or k[1] == "listing"], first
    # what the loader asks once per epoch (the round trip it sizes its reads by) stays a handful
    assert sum(first.values()) - first["GET", "track zarr.json"] - first["GET", "shard"] <= 12, first
    # the next epoch: one request per crop, a track not yet read costs its two
    fresh = second["GET", "track zarr.json"]
    assert second["GET", "shard"] == crops + fresh, second
    assert sum(second.values()) <= crops + 3 * fresh + 12, second


@pytest.mark.slow
def test_verify_asks_twice_per_track(counted):
    url, proxy = counted
    result = CliRunner().invoke(store_app, ["verify", url])
    assert result.exit_code == 0 and f"OK: {TRACKS} tracks checked" in result.output, result.output
    seen = kinds(proxy.seen)
    assert seen["GET", "track zarr.json"] == TRACKS and seen["GET", "shard"] == TRACKS, seen
    assert not [k for k in seen if k[0] == "HEAD" and k[1] in ("track zarr.json", "shard")], seen
    listings = [q for m, p, _ in proxy.seen if m == "GET" and (q := p.partition("?")[2]) and "list-type" in q]
    assert len(listings) == 1, listings  # the store is listed once (it was three times: 0.45 s each for 1,000 tracks)
    assert sum(seen.values()) <= 2 * TRACKS + 50, seen  # the manifest, integrity record and statistics: a constant
