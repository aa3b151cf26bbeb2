"""``--gpus all`` and the other list options: ``all`` means every one, or is refused by name, never nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mrnet.core import cli as core_cli
from mrnet.core.cli import parse_gpus, parse_ints
from mrnet.core.errors import UserError
from mrnet.extract.cli import app as extract_app
from mrnet.train.cli import train_app
from tests.extract.test_pipeline import make_audio_folder
from tests.helpers import make_store
from tests.train.test_cli import SMALL

runner = CliRunner()


def test_gpus_all_is_every_gpu_this_machine_has(monkeypatch):
    monkeypatch.setattr(core_cli, "cuda_devices", lambda: 3)
    assert parse_gpus("all") == parse_gpus(" ALL ") == (0, 1, 2)
    assert parse_gpus("0,2") == (0, 2) and parse_gpus(None) == parse_gpus("") == ()


def test_gpus_all_without_a_gpu_is_refused_by_both_commands_not_run_on_the_cpu(tmp_path, monkeypatch):
    """``--gpus all`` used to parse as "no GPUs": the run went on, on the CPU, without a word."""
    monkeypatch.setattr(core_cli, "cuda_devices", lambda: 0)
    with pytest.raises(UserError, match="--gpus all: this machine has no CUDA device"):
        parse_gpus("all")
    root = make_audio_folder(tmp_path / "music")
    extracted = runner.invoke(
        extract_app,
        ["folder", "--root", str(root), "--features", "mel", "--out", str(tmp_path / "s.zarr"), "--gpus", "all"],
    )
    assert extracted.exit_code == 2 and "--gpus all: this machine has no CUDA device" in extracted.output
    assert not (tmp_path / "s.zarr").exists()
    store = make_store(tmp_path / "t.zarr", per_genre=2)
    trained = runner.invoke(
        train_app, ["--store", str(store), "--out", str(tmp_path / "run"), "--epochs", "1", "--gpus", "all", *SMALL]
    )
    assert trained.exit_code == 2 and "--gpus all: this machine has no CUDA device" in " ".join(trained.output.split())
    assert not (tmp_path / "run").exists()


def test_all_is_every_layer_for_layers_and_refused_for_seeds():
    assert parse_ints("all", "--layers", all_is_none=True) is None
    with pytest.raises(UserError, match="--seeds 'all': give numbers"):
        parse_ints("all", "--seeds")
