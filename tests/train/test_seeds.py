"""``mrnet-train --seeds 0,1,2`` (issue 20, item 5): one configuration once per seed into one folder, in
turn or side by side on a local Dask cluster, each seed the run ``--seed S`` alone makes, the mean and
spread reported, unfinished seeds continued by ``--resume``."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from typer.testing import CliRunner

from mrnet.core.errors import UserError
from mrnet.train import compare, fingerprint, launch, seeds
from mrnet.train.cli import report_app, train_app
from mrnet.train.config import TrainConfig
from mrnet.train.evaluate import mean_std
from mrnet.train.loop import train
from mrnet.train.runs import RunFolder
from tests.train.conftest import small_config

runner = CliRunner()
QUICK = dict(epochs=1, batch_size=4)


def _confusion(path) -> list:
    return RunFolder(path).report()["test"]["confusion"]


@pytest.fixture(scope="module")
def alone(mel_store, tmp_path_factory):
    """Seeds 0 and 1 trained as ordinary runs, one by one."""
    where = tmp_path_factory.mktemp("alone")
    return {s: train(small_config(mel_store, where / f"s{s}", seed=s, **QUICK)) for s in (0, 1)}


@pytest.fixture(scope="module")
def seeded(mel_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "run"
    result = runner.invoke(
        train_app,
        [
            "--store",
            str(mel_store),
            "--preset",
            "tiny",
            "--width",
            "16",
            "--embed-dim",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--crop-seconds",
            "1",
            "--eval-batch-size",
            "8",
            "--num-workers",
            "0",
            "--device",
            "cpu",
            "--seeds",
            "0,1",
            "--format",
            "png,svg",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_seeds_train_in_turn_into_one_folder_each_as_alone(seeded, alone):
    out, output = seeded
    assert RunFolder(out).config().seeds == (0, 1)
    for s in (0, 1):
        sub = RunFolder(out / f"seed-{s}")
        assert sub.config().seed == s and sub.config().seeds == ()
        assert _confusion(sub.path) == _confusion(alone[s])  # the seed's run is the run --seed S makes
    report = RunFolder(out).report()
    accuracies = [RunFolder(alone[s]).report()["test"]["accuracy"] for s in (0, 1)]
    assert report["n"] == 2 and [r["seed"] for r in report["seeds"]] == [0, 1]
    assert (report["mean"]["test_accuracy"], report["std"]["test_accuracy"]) == mean_std(accuracies)
    assert "2 seeds" in output and "mean ± std" in output and (out / "report.md").read_text().count("| 0 |") == 1
    for s in (0, 1):  # --format reaches every seed's figures
        pngs = sorted(p.stem for p in (out / f"seed-{s}" / "plots").glob("*.png"))
        assert pngs and pngs == sorted(p.stem for p in (out / f"seed-{s}" / "plots").glob("*.svg"))


def test_the_seeds_report_the_interval_of_their_mean_over_the_pooled_test_predictions(seeded, tmp_path):
    out = seeded[0]
    pooled = RunFolder(out).report()["pooled"]
    test_tracks = pl.read_parquet(out / "seed-0" / "predictions.parquet")
    assert pooled["seeds"] == 2 and pooled["tracks"] == test_tracks.filter(pl.col("split") == "test").height
    mean = RunFolder(out).report()["mean"]["test_accuracy"]
    low, high = pooled["interval"]["accuracy"]
    assert 0.0 <= low <= mean <= high <= 1.0 and set(pooled["interval"]) == {"accuracy", "macro_f1"}
    assert "95 % interval of the seeds' mean" in (out / "report.md").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "seed-1" / "predictions.parquet").unlink()  # a seed from before predictions were kept
    assert seeds.write_report(RunFolder(copy), RunFolder(copy).config())["pooled"] is None


def test_mrnet_compare_takes_each_seed_as_a_run_of_one_configuration(seeded, alone, tmp_path):
    rows = compare.compare([seeded[0]])
    assert len(rows) == 1 and rows[0]["n"] == 2  # one configuration, two seeds
    mark = fingerprint.record(seeded[0] / "seed-0")["fingerprint"]
    assert mark == fingerprint.record(alone[1])["fingerprint"]  # the seed list, like the seed, is not the configuration
    # a row of several seeds carries the interval of their mean, the one the seeds' own report gives
    pooled = RunFolder(seeded[0]).report()["pooled"]["interval"]
    assert rows[0]["accuracy_interval"] == pooled["accuracy"] and rows[0]["macro_f1_interval"] == pooled["macro_f1"]
    mean, std, (low, high) = rows[0]["accuracy"], rows[0]["accuracy_std"], pooled["accuracy"]
    assert (
        compare.cell(rows[0], "accuracy") == f"{100 * mean:.1f} ± {100 * std:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
    )


def test_resume_continues_the_seeds_that_did_not_finish(seeded, alone, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(seeded[0], out)
    shutil.rmtree(out / "seed-1")
    (out / "report.json").unlink()
    assert launch.resume(out) == out
    assert _confusion(out / "seed-1") == _confusion(alone[1]) and RunFolder(out).report()["n"] == 2
    (out / "report.json").unlink()  # mrnet-report writes it again from the seeds' own reports
    result = runner.invoke(report_app, [str(out)])
    assert result.exit_code == 0, result.output
    assert RunFolder(out).report()["mean"] == RunFolder(seeded[0]).report()["mean"] and "2 seeds" in result.output


def test_bad_seed_lists_are_named(mel_store, tmp_path):
    with pytest.raises(UserError, match="--seeds 1,1"):
        TrainConfig(store="s", seeds=(1, 1))
    result = runner.invoke(train_app, ["--store", str(mel_store), "--seeds", "0,x"])
    assert result.exit_code != 0 and "--seeds" in result.output
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(small_config(mel_store, tmp_path / "run").to_json()))
    with pytest.raises(UserError, match="already holds a run"):
        launch.train(small_config(mel_store, tmp_path / "run", seeds=(0, 1), **QUICK))


@pytest.mark.slow
def test_seeds_side_by_side_on_a_local_cluster(mel_store, alone, tmp_path):
    """--seeds 0,1 --workers 2: each seed a task on a local Dask cluster of 2 workers, the same runs."""
    out = launch.train(small_config(mel_store, tmp_path / "run", seeds=(0, 1), workers=2, **QUICK))
    for s in (0, 1):
        assert _confusion(out / f"seed-{s}") == _confusion(alone[s])
    assert RunFolder(out).report()["n"] == 2
