"""The linear probe: it learns a linearly separable store, chooses on validation only, and mrnet-report
shows it beside the runs it is the floor for."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mrnet.store import FeatureStore, StoreWriter
from mrnet.train.cli import report_app
from mrnet.train.loop import train
from mrnet.train.models.linear import LinearConfig, LinearProbe
from mrnet.train.probe import GRID
from mrnet.train.runs import RunFolder, load_checkpoint
from mrnet.train.splits import split_tracks
from tests.train.conftest import learnable_store, small_config

WIDE = {"COLUMNS": "200"}


def probe_config(store, run, **overrides):
    return small_config(store, run, model="linear", **overrides)


@pytest.fixture(scope="module")
def probe_store(tmp_path_factory):
    """4 genres x 12 tracks; each genre's band is louder in variance: separable by the std statistics."""
    return learnable_store(
        tmp_path_factory.mktemp("stores") / "probe.zarr", genres=("a", "b", "c", "d"), per_genre=12, frames=(100, 140)
    )


def test_the_probe_learns_a_linearly_separable_store(probe_store, tmp_path):
    run = train(probe_config(probe_store, tmp_path / "probe"))
    report = RunFolder(run).report()
    assert report["test"]["accuracy"] >= 0.9 and report["model"]["name"] == "linear"
    assert len(RunFolder(run).metrics()) == len(GRID)  # one fit per C
    assert report["selection"]["C"] in GRID and not report["route_weights"]


def test_the_probe_chooses_on_validation_only(probe_store, tmp_path):
    first = train(probe_config(probe_store, tmp_path / "first"))
    # the same store with every test track replaced by noise: the choice and the weights must not move
    other = tmp_path / "other.zarr"
    shutil.copytree(probe_store, other)
    store = FeatureStore.open(str(other))
    writer = StoreWriter(store.location, store.provenance)
    rng = np.random.default_rng(1)
    for key, frames in split_tracks(store.tracks).test.select("key", "frames").iter_rows():
        writer.write_track(key, rng.normal(size=(1, 1, frames, 48)).astype(np.float32) * 10)
    second = train(probe_config(other, tmp_path / "second"))
    a, b = RunFolder(first), RunFolder(second)
    assert a.report()["selection"] == b.report()["selection"]
    for key, value in load_checkpoint(a.best)["model"].items():
        torch.testing.assert_close(value, load_checkpoint(b.best)["model"][key])
    assert [r["valid_accuracy"] for r in a.metrics()] == [r["valid_accuracy"] for r in b.metrics()]
    assert [r["test_accuracy"] for r in a.metrics()] != [r["test_accuracy"] for r in b.metrics()]
    # and the chosen C is the best on validation (ties: lower validation loss)
    best = max(a.metrics(), key=lambda r: (r["valid_accuracy"], -r["valid_loss"]))
    assert a.report()["selection"]["epoch"] == best["epoch"]


def test_the_report_shows_the_probe_beside_a_run_of_the_same_store_and_split(mel_store, fold_store, tmp_path):
    runs = tmp_path / "runs"
    mrnet_run = train(small_config(mel_store, runs / "mrnet", epochs=1))
    assert (
        "probe" not in json.loads((mrnet_run / "report.json").read_text())
        or RunFolder(mrnet_run).report()["probe"] is None
    )
    train(probe_config(fold_store, runs / "probe-other-store", fold=0))  # another store: never shown
    probe_run = train(probe_config(mel_store, runs / "probe"))
    result = CliRunner().invoke(report_app, [str(mrnet_run)], env=WIDE)
    assert result.exit_code == 0, result.output
    probe = RunFolder(probe_run).report()
    assert "linear probe" in result.output and f"{100 * probe['test']['accuracy']:.1f} %" in result.output
    report = RunFolder(mrnet_run).report()
    assert report["probe"]["run"] == str(probe_run)
    assert "Linear probe on the same store and split" in (mrnet_run / "report.md").read_text()
    # a run on another split of the same store (a fold) does not count
    fold_run = train(small_config(fold_store, runs / "mrnet-fold", epochs=1, fold=1))
    assert RunFolder(fold_run).report()["probe"] is None


def test_the_probe_module_pools_mean_and_std_of_every_stored_feature():
    probe = LinearProbe(LinearConfig(in_dim=3, in_channels=2, num_layers=2, num_classes=4)).eval()
    assert probe.head.in_features == 2 * 2 * 2 * 3
    assert probe(torch.randn(5, 2, 2, 7, 3)).shape == (5, 4)
    with pytest.raises(ValueError, match="expects"):
        probe(torch.randn(5, 1, 2, 7, 3))


def test_resuming_a_probe_fits_it_again_to_the_same_weights(mel_store, tmp_path):
    from mrnet.train.loop import resume

    run = train(probe_config(mel_store, tmp_path / "probe"))
    before = load_checkpoint(RunFolder(run).best)["model"]
    resume(run)
    after = load_checkpoint(RunFolder(run).best)["model"]
    for key in before:
        torch.testing.assert_close(before[key], after[key])
    assert len(RunFolder(run).metrics()) == len(GRID)


def test_mrnet_train_model_and_normalize_options(mel_store, tmp_path):
    from mrnet.train.cli import train_app

    result = CliRunner().invoke(
        train_app,
        [
            "--store",
            str(mel_store),
            "--model",
            "linear",
            "--normalize",
            "none",
            "--out",
            str(tmp_path / "p"),
            "--num-workers",
            "0",
        ],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert "C 0.0001" in result.output and "normalisation" in result.output
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert (cfg["model"], cfg["normalize"], cfg["augment"]) == ("linear", "none", False)
    refused = CliRunner().invoke(train_app, ["--store", str(mel_store), "--model", "linear", "--normalize", "instance"])
    assert refused.exit_code == 2 and "--model linear trains with none or stored" in refused.output


def test_a_cross_validation_run_shows_the_probe_over_as_many_folds(fold_store, tmp_path):
    runs = tmp_path / "runs"
    probe_run = train(probe_config(fold_store, runs / "probe", all_folds=True))
    cv = train(small_config(fold_store, runs / "mrnet", epochs=1, all_folds=True))
    report = RunFolder(cv).report()
    assert report["probe"]["run"] == str(probe_run)
    assert report["probe"]["test_accuracy"] == RunFolder(probe_run).report()["mean"]["test_accuracy"]
    assert "# Linear probe on" in (probe_run / "report.md").read_text()
    assert "Linear probe on the same store and folds" in (cv / "report.md").read_text()
