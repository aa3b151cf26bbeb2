"""Object storage that misbehaves: a proxy in front of the test S3 server answers a few per cent of
requests with 500/503 or resets the connection, and delays every one. Extraction, copying, verifying
and training through it complete, and give what a run without faults gives."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mrnet.extract.pipeline import run
from mrnet.store import FeatureStore, Location
from mrnet.store.cli import app as store_app
from mrnet.store.copy import copy_store
from mrnet.train.loop import train
from mrnet.train.runs import RunFolder
from tests.extract.test_pipeline import config, make_audio_folder
from tests.store.faults import FaultProxy
from tests.store.util import new_bucket, stored
from tests.train.conftest import small_config

pytestmark = pytest.mark.slow
COLUMNS = ["track_id", "status", "frames", "checksum"]


def test_extract_copy_verify_and_train_through_faulty_storage_equal_a_clean_run(
    tmp_path, s3_env, s3_endpoint, monkeypatch
):
    _, bucket = new_bucket()
    music = make_audio_folder(tmp_path / "music", per_genre=6)
    clean_cfg = config(tmp_path / "clean", music, out=str(tmp_path / "clean.zarr"), unit_size=3, folds=3)
    clean = run(clean_cfg).tracks.select(COLUMNS).sort("track_id")
    clean_run = train(small_config(clean_cfg.store, tmp_path / "clean-run", epochs=2, batch_size=4))

    with FaultProxy(s3_endpoint, errors=0.03, resets=0.02, seed=1) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        url = f"s3://{bucket}/faulty.zarr"
        faulty = (
            run(config(tmp_path / "faulty", music, out=url, unit_size=3, folds=3))
            .tracks.select(COLUMNS)
            .sort("track_id")
        )
        copied = copy_store(Location.parse(url), Location.parse(tmp_path / "copy.zarr"))
        verified = CliRunner().invoke(store_app, ["verify", url])
        faulty_run = train(small_config(url, tmp_path / "faulty-run", epochs=2, batch_size=4))
    injected = proxy.counts["errors"] + proxy.counts["resets"]
    assert injected >= 5, proxy.counts  # the faults really happened

    assert faulty.equals(clean)
    assert copied.copied == len(stored(Location.parse(tmp_path / "copy.zarr")))
    assert FeatureStore.open(tmp_path / "copy.zarr").tracks.select(COLUMNS).sort("track_id").equals(clean)
    assert verified.exit_code == 0 and "OK: 12 tracks checked" in verified.output, verified.output
    a, b = RunFolder(clean_run).report(), RunFolder(faulty_run).report()
    assert a["test"] == b["test"] and a["selection"] == b["selection"]
    assert [r["train_loss"] for r in RunFolder(clean_run).metrics()] == [
        r["train_loss"] for r in RunFolder(faulty_run).metrics()
    ]
