"""Extraction straight into object storage (a real S3-compatible server on localhost)."""

from __future__ import annotations

import numpy as np
import polars as pl

from mrnet.extract.pipeline import run
from mrnet.store import FeatureStore
from tests.extract.test_pipeline import config, make_audio_folder


def test_extract_to_s3_resume_and_read_back(tmp_path, s3):
    _, bucket = s3
    root = make_audio_folder(tmp_path / "music")
    url = f"s3://{bucket}/folder.zarr"
    local = run(config(tmp_path, root, out=str(tmp_path / "local.zarr")))
    remote = run(config(tmp_path, root, out=url))
    cols = ["track_id", "status", "frames", "checksum"]
    assert remote.tracks.select(cols).sort("track_id").equals(local.tracks.select(cols).sort("track_id"))
    store = FeatureStore.open(url)
    assert store.finalized and store.provenance.feature == "mel"
    key = store.tracks.filter(pl.col("status") == "done")["key"][0]
    assert np.array_equal(store.read(key, 3, 40), FeatureStore.open(tmp_path / "local.zarr").read(key, 3, 40))
    # a second run against the bucket finds everything journaled there
    seen = []
    again = run(config(tmp_path, root, out=url), on_unit=seen.append)
    assert seen == [] and again.skipped == 8
