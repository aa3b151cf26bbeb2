"""mrnet-extract's named errors: each ends in one message that names the thing and the fix, and loses
nothing already done (a read-only folder, a full disk, object storage without credentials, Dask workers
without credentials, weights that do not load)."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

from mrnet.extract.cli import app
from mrnet.store import FeatureStore
from tests.extract.test_pipeline import make_audio_folder

runner = CliRunner()


def extract(tmp_path, *args, root=None):
    root = root or make_audio_folder(tmp_path / "music")
    result = runner.invoke(app, ["folder", "--root", str(root), "--features", "mel", "--folds", "2", *map(str, args)])
    assert "Traceback" not in result.output and (
        result.exception is None or isinstance(result.exception, SystemExit)
    ), result.exception
    return result


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_read_only_out_or_manifests_folder_is_named(tmp_path, read_only):
    locked = read_only(tmp_path / "locked")
    result = extract(tmp_path, "--out", locked / "s.zarr", "--manifests-dir", tmp_path / "m")
    assert result.exit_code == 2 and f"cannot write {locked}/s.zarr" in one_line(result.output)
    result = extract(tmp_path, "--out", tmp_path / "s.zarr", "--manifests-dir", locked / "m")
    assert result.exit_code == 2 and f"cannot write {locked}/m" in one_line(result.output)


def test_a_full_disk_says_what_was_written_and_that_rerunning_resumes(tmp_path, monkeypatch):
    from mrnet.store import shardwrite

    real, calls = shardwrite.write_atomic, []

    def fills_up(target, data, **kw):  # the disk fills after a few shards
        calls.append(target)
        if len(calls) > 6:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real(target, data, **kw)

    monkeypatch.setattr(shardwrite, "write_atomic", fills_up)
    out = tmp_path / "s.zarr"
    result = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", "--unit-size", "1")
    message = one_line(result.output)
    assert (
        result.exit_code == 2
        and "no space left writing" in message
        and "this run wrote" in message
        and "resumes" in message
    )
    monkeypatch.setattr(shardwrite, "write_atomic", real)
    again = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", "--unit-size", "1")
    assert again.exit_code == 0 and "tracks done (or failed) in earlier runs" in again.output
    assert (FeatureStore.open(out).tracks["status"] == "done").sum() == 6


def no_credentials(monkeypatch):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "MRNET_STORAGE_OPTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")


def test_s3_without_credentials_is_named(tmp_path, s3, monkeypatch):
    _, bucket = s3
    no_credentials(monkeypatch)
    result = extract(tmp_path, "--out", f"s3://{bucket}/x.zarr", "--manifests-dir", tmp_path / "m")
    assert (
        result.exit_code == 2
        and "NoCredentialsError" in result.output
        and "--storage-options" in one_line(result.output)
    )


@pytest.mark.slow
def test_dask_workers_without_credentials_are_named(tmp_path, s3):
    """The client can open the store; the workers, started without AWS keys, cannot write to it."""
    from dask.distributed import LocalCluster

    _, bucket = s3
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
    }
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0, env=env
    ) as cluster:
        result = extract(
            tmp_path,
            "--out",
            f"s3://{bucket}/x.zarr",
            "--manifests-dir",
            tmp_path / "m",
            "--scheduler",
            cluster.scheduler_address,
        )
    message = one_line(result.output)
    assert (
        result.exit_code == 2
        and "Dask worker tcp://" in message
        and "NoCredentialsError" in message
        and "--storage-options" in message
    )


def test_model_weights_that_do_not_load_are_named(tmp_path, tiny_wavlm):
    import shutil

    broken = tmp_path / "broken-wavlm"
    shutil.copytree(tiny_wavlm, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    result = extract(
        tmp_path,
        "--features",
        "wavlm",
        "--model",
        broken,
        "--out",
        tmp_path / "s.zarr",
        "--manifests-dir",
        tmp_path / "m",
    )
    assert result.exit_code == 2 and f"--model '{broken}': cannot load WavLM weights" in one_line(result.output)
