"""Options and run folders a careful user can get wrong (issue 21, items 9, 11 and 13): every numeric option has
a declared range, a diverging run stops by name, a full disk says --resume, damaged or foreign run files are named."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mrnet.core.errors import UserError
from mrnet.core.files import TEMP_MARK
from mrnet.train import loop
from mrnet.train import step as step_module
from mrnet.train.cli import predict_app, report_app, train_app
from mrnet.train.config import TrainConfig
from mrnet.train.display import RichReporter
from mrnet.train.runs import RunFolder, load_checkpoint, save_checkpoint
from tests.train.conftest import small_config
from tests.train.test_cli import SMALL, bad, copy_run, mrnet_train, one_line, runner

# --- every numeric option has a range, checked where it is parsed ------------------------------------------


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--lr-min", "nan", "--lr-min nan: give a finite number, 0 <= x <= 10"),  # trained into NaN loss with exit 0
        ("--min-delta", "nan", "--min-delta nan: give a finite number"),  # turned early stopping off
        ("--time-masks", "1000000000", "--time-masks 1000000000: give a whole number, 0 <= x <= 100"),  # hung
        ("--feature-masks", "1000000000", "--feature-masks 1000000000: give a whole number, 0 <= x <= 100"),  # hung
        ("--workers", "-1", "--workers -1: give a whole number, 1 <= x <= 1024"),  # hung
        ("--seed", "-1", "--seed -1: give a whole number, 0 <= x <= 4294967295"),
        ("--seed", str(2**70), f"--seed {2**70}: give a whole number"),
        ("--lr", "inf", "--lr inf: give a finite number, 0 < x <= 10"),
        ("--lr", "0", "--lr 0.0: give a finite number, 0 < x <= 10"),
        ("--weight-decay", "nan", "--weight-decay nan"),
        ("--crop-seconds", "nan", "--crop-seconds nan"),
        ("--crop-seconds", "inf", "--crop-seconds inf"),
        ("--crop-seconds", "-2", "--crop-seconds -2.0"),
        ("--epochs", "0", "--epochs 0: give a whole number, 1 <= x"),
        ("--batch-size", "-4", "--batch-size -4"),
        ("--patience", "-1", "--patience -1"),
        ("--num-workers", "-1", "--num-workers -1"),
        ("--noise-p", "1.5", "--noise-p 1.5: give a finite number, 0 <= x <= 1"),
        ("--time-mask-frac", "nan", "--time-mask-frac nan"),
        ("--eval-every", "0", "--eval-every 0"),
        ("--width", "0", "--width 0: give a whole number, 1 <= x <= 65536"),
        ("--dropout", "nan", "--dropout nan"),
        ("--model-option", "dropout=NaN", "--dropout nan"),
    ],
)
def test_a_number_out_of_its_range_is_refused_by_name(mel_store, tmp_path, option, value, says):
    assert says in bad("--store", mel_store, "--out", tmp_path / "r", option, value)
    assert not (tmp_path / "r").exists()


def test_help_shows_each_options_range():
    text = one_line(runner.invoke(train_app, ["--help"], env={"COLUMNS": "250"}).output)
    for option in (
        "Initial learning rate. [range: 0 < x <= 10]",
        "Time masks per crop, at most. [range: 0 <= x <= 100]",
        "[range: 0 <= x <= 4294967295]",
        "Learning rate the cosine ends at. [range: 0 <= x <= 10]",
    ):
        assert option in text


def test_a_preset_or_a_config_file_cannot_smuggle_a_nan_either(tmp_path):
    with pytest.raises(UserError, match="--lr-min nan"):
        TrainConfig.from_json({"store": "s.zarr", "lr_min": math.nan})
    with pytest.raises(UserError, match="--min-delta nan"):
        small_config(tmp_path / "s.zarr", tmp_path / "r", min_delta=math.nan)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"store": "s.zarr", "lr": NaN}')  # json.loads reads NaN
    with pytest.raises(UserError, match=r"config.json: --lr nan.*Restore config.json"):
        RunFolder(tmp_path / "run").config()


def test_the_waveform_augmentation_of_a_preset_or_config_file_is_held_to_the_same_ranges(tmp_path):
    base = {"store": "s.zarr", "model": "mixnet", "normalize": "none"}
    assert (
        TrainConfig.from_json({**base, "wave_augment": {"noise_p": 0.5, "time_masks": 1}}).wave_augment["noise_p"]
        == 0.5
    )
    for wave, says in (
        ({"noise_p": math.nan}, "wave_augment.noise_p nan: give a finite number, 0 <= x <= 1"),
        ({"time_mask_frac": 1.5}, "wave_augment.time_mask_frac 1.5: give a finite number, 0 <= x <= 1"),
        ({"time_masks": 10**9}, "wave_augment.time_masks 1000000000: give a whole number, 0 <= x <= 100"),
        ({"feature_masks": None}, "wave_augment.feature_masks None: give a whole number"),
    ):
        with pytest.raises(UserError, match=re.escape(says)):
            TrainConfig.from_json({**base, "wave_augment": wave})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({**base, "wave_augment": {"noise_p": math.nan}}))
    with pytest.raises(UserError, match=r"config.json: wave_augment.noise_p nan.*Restore config.json"):
        RunFolder(tmp_path / "run").config()


def test_the_largest_seed_seeds_every_rank():
    import numpy as np

    from mrnet.train.runs import seed_everything

    seed_everything(
        (2**32 - 1) * 1_000_003 + 1
    )  # rank 1's seed: NumPy refused it ("Seed must be between 0 and 2**32 - 1")
    seed_everything(7)
    drawn = np.random.rand()
    np.random.seed(7)
    assert drawn == np.random.rand()  # a seed NumPy took as it is still is


def test_a_crop_longer_than_every_track_names_the_longest(mel_store, tmp_path):
    from mrnet.store.reader import FeatureStore

    tracks = FeatureStore.open(mel_store).tracks
    longest = tracks.filter(tracks["split"] == "train")["frames"].max()
    text = bad("--store", mel_store, "--out", tmp_path / "r", "--crop-seconds", "600")
    seconds = f"{longest / 62.5:.3g}"
    assert (
        f"--crop-seconds 600 is longer than the longest training track ({seconds} s, {longest} frames): give at most {seconds}"
        in text
    )
    assert not (tmp_path / "r").exists()


def test_a_width_too_large_for_memory_says_how_much_it_would_need(mel_store, tmp_path):
    text = bad("--store", mel_store, "--out", tmp_path / "r", "--width", "60000")
    assert (
        "--model mrnet with width=60000" in text and "GiB for them, their gradients and the optimizer's state" in text
    )
    assert "available. Give a smaller --width" in text
    assert not (tmp_path / "r").exists()


# --- a diverging run stops by name; a full disk says --resume ------------------------------------------------


def nan_from_call(monkeypatch, first: int) -> None:
    """The training loss becomes NaN from the ``first``-th training batch on (the real step, a spoiled loss)."""
    real, calls = step_module.F.cross_entropy, [0]

    def spoiled(*args, **kwargs):
        calls[0] += 1
        loss = real(*args, **kwargs)
        return loss * math.nan if calls[0] >= first else loss

    monkeypatch.setattr(step_module.F, "cross_entropy", spoiled)


def test_a_non_finite_loss_stops_the_run_naming_the_epoch_batch_and_lr(mel_store, tmp_path, monkeypatch):
    out = tmp_path / "r"
    nan_from_call(monkeypatch, first=5)  # 12 training tracks, 4 a batch: epoch 2, batch 2
    result = mrnet_train(
        "--store", mel_store, "--preset", "tiny", "--epochs", "3", "--out", out, *SMALL, "--batch-size", "4"
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = one_line(result.output)
    assert "training diverged: the loss of batch 2 of epoch 2 is nan" in text
    assert (
        "epochs 1-1 and their checkpoint are kept" in text
        and "--lr 0.001, --lr-min 0.0005" in text
        and "lower --lr" in text
    )
    run = RunFolder(out)
    assert [r["epoch"] for r in run.metrics()] == [1]  # nothing already written is lost
    assert load_checkpoint(run.last)["epoch"] == 1 and run.best.exists() and not run.finished
    assert all(torch.isfinite(v).all() for v in load_checkpoint(run.last)["model"].values() if v.is_floating_point())


def test_a_full_disk_says_resume_and_resume_then_finishes(mel_store, tmp_path, monkeypatch):
    from mrnet.train import runs

    out, real, saves = tmp_path / "r", runs.write_atomic, [0]

    def full(target, data, **kw):
        if Path(target).name == "last.pt":
            saves[0] += 1
            if saves[0] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(target, data, **kw)

    monkeypatch.setattr(runs, "write_atomic", full)
    args = ["--preset", "tiny", "--epochs", "3", *SMALL]
    result = mrnet_train("--store", mel_store, "--out", out, *args)
    assert result.exit_code == 2
    text = one_line(result.output)
    assert f"Free some space, then continue the run: mrnet-train --resume {out}" in text and "same command" not in text
    monkeypatch.setattr(runs, "write_atomic", real)
    assert "already holds a run" in one_line(
        mrnet_train("--store", mel_store, "--out", out, *args).output
    )  # the old advice
    resumed = mrnet_train("--resume", out)
    assert resumed.exit_code == 0, resumed.output
    assert [r["epoch"] for r in RunFolder(out).metrics()] == [1, 2, 3] and RunFolder(out).finished


def test_resume_removes_the_runs_own_temporary_files_and_nothing_else(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    left = [run / "checkpoints" / f"last.pt{TEMP_MARK}0badc0de", run / f"metrics.jsonl{TEMP_MARK}12345678"]
    mine = [run / "checkpoints" / "my-notes.txt", run / "last.pt.bak"]
    for path in left + mine:
        path.write_bytes(b"x")
    (run / "report.json").unlink()  # resumable: finishes again
    result = mrnet_train("--resume", run)
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in left) and all(p.exists() for p in mine)
    assert "left by a write that was cut short" in one_line(result.output)


# --- another model's checkpoint, damaged run files -------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_run(mel_store, tmp_path_factory) -> Path:
    """A finished run of another model (the linear probe) on the same store."""
    return loop.train(small_config(mel_store, tmp_path_factory.mktemp("runs") / "probe", model="linear"))


def test_another_models_checkpoint_is_named_with_both_models(trained_run, probe_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    shutil.copy(RunFolder(probe_run).best, run / "checkpoints" / "best.pt")
    result = runner.invoke(predict_app, [str(run), str(tmp_path / "x.wav")])
    assert result.exit_code == 2
    text = one_line(result.output)
    assert (
        "best.pt holds the weights of a linear model, and this run's config.json trains mrnet" in text
        and "Traceback" not in text
    )
    shutil.copy(RunFolder(probe_run).last, run / "checkpoints" / "last.pt")
    (run / "report.json").unlink()
    assert "last.pt holds the weights of a linear model, and this run's config.json trains mrnet" in one_line(
        mrnet_train("--resume", run).output
    )


def test_a_checkpoint_from_before_the_model_was_recorded_that_does_not_fit_is_named(trained_run, probe_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    older = {k: v for k, v in load_checkpoint(RunFolder(probe_run).best).items() if k not in ("format", "model_name")}
    save_checkpoint(run / "checkpoints" / "best.pt", older)
    text = one_line(runner.invoke(predict_app, [str(run), str(tmp_path / "x.wav")]).output)
    assert (
        "best.pt does not fit this run's model (mrnet, width=16, embed_dim=16, dropout=0.1)" in text
        and "another run" in text
    )


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("config.json", "[1, 2]", "config.json holds a JSON list, not the object mrnet-train writes"),
        ("store.json", "{not json", "store.json is not JSON"),
        ("store.json", "[]", "store.json holds a JSON list"),
    ],
)
def test_damaged_run_files_are_named_with_the_fix(trained_run, tmp_path, name, content, says):
    run = copy_run(trained_run, tmp_path)
    (run / name).write_text(content)
    for result in (
        runner.invoke(report_app, [str(run)]),
        runner.invoke(predict_app, [str(run), str(tmp_path / "x.wav")]),
    ):
        assert result.exit_code == 2 and "Traceback" not in result.output
        text = one_line(result.output)
        assert says in text and f"Restore {name} from a backup" in text


def test_report_reads_a_metrics_file_cut_mid_line_and_warns(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "lr": 0.0005, "train_lo')  # a kill or a full disk mid-append
    result = runner.invoke(report_app, [str(run)])
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    assert (
        "its last line (line 3) is cut short and was left out; the 2 whole epoch record(s) before it are read" in text
    )
    assert "chosen on the validation split" in text
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "{half", lines[1]]) + "\n")  # damage inside is refused
    damaged = runner.invoke(report_app, [str(run)])
    assert damaged.exit_code == 2 and "metrics.jsonl: line 2 is not a JSON record" in one_line(damaged.output)


def predict_process(*args: Path) -> subprocess.CompletedProcess:
    code = f"from mrnet.train.cli import predict_main; import sys; sys.argv = ['mrnet-predict', *{[str(a) for a in args]!r}]; predict_main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)  # it hung for ever


def test_predict_given_a_fifo_does_not_open_it(trained_run, tmp_path):
    os.mkfifo(tmp_path / "stream.wav")
    done = predict_process(trained_run, tmp_path / "stream.wav")
    assert done.returncode == 1, done.stderr
    assert "stream.wav: not a regular file (a FIFO); only regular files are read" in one_line(done.stdout + done.stderr)
    os.mkfifo(tmp_path / "list.csv")  # a list of files to predict
    done = predict_process(trained_run, tmp_path / "list.csv")
    assert done.returncode == 2 and "list.csv is not a regular file" in one_line(done.stdout + done.stderr)


# --- what the display shows -----------------------------------------------------------------------------------


class Recording(loop.Reporter):
    def __init__(self):
        self.passes: list[tuple[str, int, int]] = []

    def evaluation(self, *, part: str, done: int, total: int) -> None:
        self.passes.append((part, done, total))


def test_evaluation_batches_are_reported_as_they_are_scored(mel_store, tmp_path):
    reporter = Recording()
    loop.train(small_config(mel_store, tmp_path / "r", epochs=1, eval_batch_size=1), reporter=reporter)
    # 3 validation tracks, 3 test tracks (one a batch): the epoch's validation and test curve, then the final passes
    assert [done for part, done, _ in reporter.passes if part == "valid"] == [0, 1, 2, 3] * 2
    assert [done for part, done, _ in reporter.passes if part == "test"] == [0, 1, 2, 3] * 2
    assert {total for _, _, total in reporter.passes} == {3}


def test_the_display_has_an_evaluation_bar_and_the_epoch_line_shows_the_validation_loss():
    from io import StringIO

    from rich.console import Console

    shown = RichReporter(Console(file=StringIO(), width=200))
    shown.start(run=Path("r"), description="official split", epochs=2, done=0, steps=3)
    shown.evaluation(part="valid", done=1, total=4)
    task = shown.progress.tasks[shown.evaluating]
    assert (task.description, task.completed, task.total, task.visible) == ("valid", 1, 4, True)
    shown.evaluation(part="valid", done=4, total=4)
    assert not shown.progress.tasks[shown.evaluating].visible
    shown.epoch(
        {
            "epoch": 1,
            "lr": 1e-3,
            "train_loss": 1.0,
            "valid_accuracy": 0.5,
            "valid_macro_f1": 0.4,
            "valid_loss": 0.8125,
            "best": True,
        }
    )
    shown.end()
    assert "valid 50.0 % F1 0.400 loss 0.812" in shown.console.file.getvalue()
