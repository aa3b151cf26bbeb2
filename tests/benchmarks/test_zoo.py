"""The model comparison's plan: every registered network on a store of the profile it reads, options mrnet-train accepts."""

from __future__ import annotations

import json

import pytest
from benchmarks import zoo
from typer.testing import CliRunner

from mrnet.train.cli import train_app
from mrnet.train.models import MODELS
from mrnet.train.presets import RECIPES

RUNS = [(dataset, run) for dataset in zoo.DATASETS for run in zoo.RUNS[dataset]]


def test_each_dataset_trains_every_registered_model_once():
    for dataset in zoo.DATASETS:
        assert sorted(r.model for r in zoo.RUNS[dataset]) == sorted(MODELS)


@pytest.mark.parametrize("dataset, run", RUNS, ids=[f"{d}-{r.model}" for d, r in RUNS])
def test_each_run_reads_a_profile_its_model_reads_and_its_options_parse(dataset, run, tmp_path):
    features = MODELS[run.model].features
    assert features is None or run.feature in features
    result = CliRunner().invoke(
        train_app, [*zoo.command(zoo._store_path(dataset, run.feature), run, 0, tmp_path / "run"), "--show-config"][1:]
    )
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["model"] == run.model and cfg["store"].endswith(".zarr")
    if run.model not in (
        "mrnet",
        "linear",
    ):  # the baselines: their own recipe, cut short, selected on validation accuracy
        assert (
            cfg["preset"] == f"{run.model}-paper" and cfg["select_metric"] == "accuracy" and cfg["test_curve"] is False
        )
        assert cfg["batch_size"] == 16 and cfg["lr"] == 1e-3
        assert cfg["epochs"] == int(run.options[run.options.index("--epochs") + 1]) < RECIPES[run.model]["epochs"]


def test_the_demo_changes_only_the_epochs_of_a_baseline():
    real = {r.model: r for r in zoo.RUNS["realmusic"]}
    for run in zoo.RUNS["demo"]:
        if run.model in zoo.DEMO_EPOCHS:
            mine, theirs = list(run.options), list(real[run.model].options)
            i = mine.index("--epochs")
            assert (
                mine[i + 1] == str(zoo.DEMO_EPOCHS[run.model])
                and mine[:i] + mine[i + 2 :] == theirs[:i] + theirs[i + 2 :]
            )


def test_the_nnet_runs_read_the_mfcc_their_authors_compute():
    # NNET2 and MixNet's authors compute the MFCC per 2^18-sample window, floored at that window's maximum
    for dataset in zoo.DATASETS:
        features = {r.model: r.feature for r in zoo.RUNS[dataset]}
        assert (features["nnet1"], features["nnet2"], features["mixnet"]) == (
            "wave+mfcc-window",
            "mfcc-window",
            "wave+mfcc-window",
        )


def test_stores_of_one_dataset_are_named_by_profile():
    assert zoo._store_path("realmusic", "mel").name == "realmusic.zarr"  # the real-music benchmark's own store
    assert zoo._store_path("realmusic", "wave+mfcc").name == "realmusic-wave-mfcc.zarr"
    assert zoo._store_path("demo", "mel96").name == "demo-mel96.zarr"


@pytest.mark.slow
def test_the_grid_runs_side_by_side_on_a_local_cluster_and_names_a_failed_run(tmp_path, monkeypatch):
    from tests.helpers import make_store

    store = make_store(tmp_path / "mel.zarr", separable=True, strength=2.0, frames=(160, 220))
    tiny = (
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--width",
        "16",
        "--embed-dim",
        "16",
        "--batch-size",
        "4",
        "--crop-seconds",
        "1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
    )
    runs = [
        zoo.Run("mrnet", "mel", tiny, "tiny"),
        zoo.Run("linear", "mel", ("--model", "linear", "--device", "cpu"), "probe"),
        zoo.Run("nnet1", "mel", tiny[:-4] + ("--model", "nnet1"), "a model that cannot read mel"),
    ]
    monkeypatch.setitem(zoo.RUNS, "demo", runs)
    monkeypatch.setattr(zoo, "stores", lambda dataset, features: {"mel": store})
    monkeypatch.setattr(zoo, "run_dir", lambda dataset, run, seed: tmp_path / "zoo" / f"{run.model}-s{seed}")
    logged = []
    monkeypatch.setattr(zoo, "log", logged.append)
    done = zoo.train_all("demo", workers=2)
    assert [p.name for p in done] == ["mrnet-s0", "linear-s0", "nnet1-s0"]
    assert (done[0] / "report.json").exists() and (done[1] / "report.json").exists()  # the others finished
    assert not (done[2] / "report.json").exists() and any("nnet1 seed 0 FAILED" in line for line in logged)
