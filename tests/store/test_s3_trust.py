"""What a bucket may hold that no disk can, and a bucket that is not there (issue 21, item 13)."""

from __future__ import annotations

import json
import uuid

from mrnet.store.cli import app
from tests.helpers import make_store


def test_a_key_that_is_also_a_prefix_is_named_by_cp_and_verify(runner, s3, tmp_path):
    fs, bucket = s3
    url = f"s3://{bucket}/x.zarr"
    make_store(url, per_genre=1)
    fs.call_s3("put_object", Bucket=bucket, Key="x.zarr/manifest/tracks.parquet/evil", Body=b"not part of a store")
    for _ in range(2):  # the same clear refusal on every rerun, nothing written
        result = runner.invoke(app, ["cp", url, str(tmp_path / "copy.zarr")])
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and "'manifest/tracks.parquet/evil'" in text and "not written by mrnet" in text, (
            result.output
        )
        assert not (tmp_path / "copy.zarr").exists()
    report = json.loads(runner.invoke(app, ["verify", url, "--json"]).output)
    assert not report["ok"] and any("manifest/tracks.parquet/evil" in p["what"] for p in report["problems"])


def test_a_bucket_that_does_not_exist_is_named_with_the_fix(runner, s3, store, tmp_path):
    missing = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x.zarr"
    for args in (
        ["cp", str(store), missing],
        ["cp", missing, str(tmp_path / "c.zarr")],
        ["info", missing],
        ["verify", missing],
    ):
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())
        assert result.exit_code == (1 if args[0] == "verify" else 2) and "Traceback" not in text, (args, result.output)
        assert missing.split("/")[2] in text and ("bucket" in text or "not a feature store" in text), (args, text)
