"""Many runs: folds trained separately and aggregated by mrnet-report, folds side by side on a local
Dask cluster (a failed fold named, the others kept), a finished run extended with --resume --epochs."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from mrnet.core.errors import UserError
from mrnet.train import aggregate, launch
from mrnet.train.cli import report_app, train_app
from mrnet.train.loop import resume, train
from mrnet.train.runs import RunFolder
from tests.train.conftest import small_config

runner = CliRunner()
FOLD = dict(epochs=1, batch_size=4)


@pytest.fixture(scope="module")
def separate_folds(fold_store, tmp_path_factory):
    """The 3 folds of ``fold_store`` trained one by one as ordinary one-fold runs into ``cv/fold-<k>``."""
    cv = tmp_path_factory.mktemp("separate") / "cv"
    for k in range(3):
        train(small_config(fold_store, cv / f"fold-{k}", fold=k, **FOLD))
    return cv


def test_folds_trained_separately_aggregate_into_the_report_folds_all_writes(fold_store, separate_folds, tmp_path):
    cv = tmp_path / "cv"
    shutil.copytree(separate_folds, cv)
    result = runner.invoke(report_app, [str(cv)])
    assert result.exit_code == 0, result.output
    report = RunFolder(cv).report()
    folds = [RunFolder(cv / f"fold-{k}").report() for k in range(3)]
    assert report["n"] == 3 and report["split"] == "3-fold cross-validation"
    assert [r["test_accuracy"] for r in report["folds"]] == [f["test"]["accuracy"] for f in folds]
    assert report["mean"]["test_accuracy"] == pytest.approx(sum(f["test"]["accuracy"] for f in folds) / 3)
    assert RunFolder(cv).config().all_folds and (cv / "plots" / "folds.png").exists()
    # the same as --folds all over the same runs: its aggregation step (resume finds every fold finished) rewrites the same numbers
    before = json.loads((cv / "report.json").read_text())
    resume(cv)
    after = RunFolder(cv).report()
    assert {k: after[k] for k in ("folds", "mean", "std", "test_all_folds")} == {
        k: before[k] for k in ("folds", "mean", "std", "test_all_folds")
    }


def test_aggregation_refuses_missing_unfinished_and_mismatched_folds(fold_store, separate_folds, tmp_path):
    cv = tmp_path / "cv"
    shutil.copytree(separate_folds, cv)
    shutil.rmtree(cv / "fold-2")
    with pytest.raises(UserError, match=re.escape("missing: fold-2. Train each with: mrnet-train --store")):
        aggregate.aggregate_folds(cv)
    shutil.copytree(separate_folds / "fold-2", cv / "fold-2")
    (cv / "fold-1" / "report.json").unlink()
    with pytest.raises(UserError, match="fold-1 of .* have not finished"):
        aggregate.aggregate_folds(cv)
    shutil.rmtree(cv / "fold-1")
    train(small_config(fold_store, cv / "fold-1", fold=1, **{**FOLD, "lr": 0.01}))
    with pytest.raises(UserError, match="differ in lr"):
        aggregate.aggregate_folds(cv)
    shutil.rmtree(cv / "fold-1")
    shutil.copytree(separate_folds / "fold-0", cv / "fold-1")
    with pytest.raises(UserError, match="holds a run of fold 0"):
        aggregate.aggregate_folds(cv)


def test_a_finished_run_extended_keeps_its_epochs_and_runs_the_added_ones_at_lr_min(mel_store, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = RunFolder(run).metrics()
    with pytest.raises(UserError, match="extended, not shortened"):
        resume(run, epochs=1)
    extended = resume(run, epochs=4)
    after = RunFolder(extended).metrics()
    cfg = RunFolder(extended).config()
    assert (cfg.epochs, cfg.schedule_epochs) == (4, 2)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(after[:2]) == strip(before) and len(after) == 4
    assert after[1]["lr"] > cfg.lr_min  # epoch 2 of the 2-epoch cosine ran at its own rate ...
    assert [r["lr"] for r in after[2:]] == [cfg.lr_min, cfg.lr_min]  # ... the added epochs at lr_min
    assert RunFolder(extended).report()["epochs_trained"] == 4


def test_extension_from_the_command_line(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    result = runner.invoke(train_app, ["--resume", str(run), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert len(RunFolder(run).metrics()) == 3 and RunFolder(run).finished


@pytest.mark.slow
def test_folds_side_by_side_on_a_local_cluster_a_failed_fold_named_the_others_kept(
    fold_store, separate_folds, tmp_path
):
    """--folds all --workers 2: 3 folds on a local Dask cluster of 2 workers. A fold whose checkpoint is
    corrupt fails by name, the other two finish and no aggregate is written; with the cause removed,
    --resume trains that fold alone and writes the aggregate."""
    out = tmp_path / "cv"
    cfg = small_config(fold_store, out, all_folds=True, workers=2, **FOLD)
    (out / "fold-1" / "checkpoints").mkdir(parents=True)
    (out / "fold-1" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    (out / "fold-1" / "config.json").write_text(
        json.dumps(small_config(fold_store, out / "fold-1", fold=1, **FOLD).to_json())
    )
    with pytest.raises(UserError, match=r"1 of 3 folds .* failed[\s\S]*fold-1: UserError: .*last.pt is corrupt"):
        launch.train(cfg)
    assert RunFolder(out / "fold-0").finished and RunFolder(out / "fold-2").finished and not RunFolder(out).finished
    shutil.rmtree(out / "fold-1")
    assert launch.resume(out) == out
    report = RunFolder(out).report()
    assert report["n"] == 3 and RunFolder(out / "fold-1").finished
    # each fold trained on its own worker is the fold trained alone (same seed, data order and device)
    for k in range(3):
        assert (
            RunFolder(out / f"fold-{k}").report()["test"]["confusion"]
            == RunFolder(separate_folds / f"fold-{k}").report()["test"]["confusion"]
        )


def test_extending_a_folds_all_run_extends_every_fold(separate_folds, tmp_path):
    cv = tmp_path / "cv"
    shutil.copytree(separate_folds, cv)
    aggregate.aggregate_folds(cv)
    resume(cv, epochs=2)
    assert [len(RunFolder(cv / f"fold-{k}").metrics()) for k in range(3)] == [2, 2, 2]
    assert all(RunFolder(cv / f"fold-{k}").config().schedule_epochs == 1 for k in range(3))
    assert RunFolder(cv).config().epochs == 2 and RunFolder(cv).report()["n"] == 3
