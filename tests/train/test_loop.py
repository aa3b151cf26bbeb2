"""The training loop: it learns, it resumes exactly, and it selects on validation only."""

from __future__ import annotations

import copy
import json
import os
import signal
from pathlib import Path

import polars as pl
import pytest
import torch

from mrnet.store import FeatureStore
from mrnet.train import recipe
from mrnet.train.loop import Interrupted, resume, train
from mrnet.train.runs import RunFolder, load_checkpoint, save_checkpoint
from tests.store.util import new_bucket
from tests.train.conftest import learnable_store, small_config


def history(run) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in RunFolder(run).metrics()]


def test_a_tiny_model_overfits_one_batch(mel_store, tmp_path):
    """All 12 training tracks in one batch, crops as long as the longest track (the same input every epoch: a
    longer --crop-seconds is refused)."""
    longest = FeatureStore.open(str(mel_store)).tracks.filter(pl.col("split") == "train")["frames"].max()
    cfg = small_config(
        mel_store,
        tmp_path / "run",
        epochs=6,
        batch_size=12,
        crop_seconds=longest / 62.5,
        augment=False,
        dropout=0.0,
        eval_every=6,
        test_curve=False,
    )
    run = train(cfg)
    h = history(run)
    assert len(h) == 6
    assert h[-1]["train_accuracy"] == 1.0
    assert h[-1]["train_loss"] < 0.2 * h[0]["train_loss"]  # the head's BatchNorm keeps it above zero
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert {
        "config.json",
        "store.json",
        "metrics.jsonl",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "report.json",
        "report.md",
        "plots/curves.png",
        "plots/confusion.png",
        "plots/weights.png",
    } <= files


RESUME_SETTINGS = dict(epochs=3, batch_size=4)  # 3 batches an epoch; augmentation and dropout on


@pytest.fixture(scope="module")
def straight(mel_store, tmp_path_factory):
    return train(small_config(mel_store, tmp_path_factory.mktemp("straight") / "run", **RESUME_SETTINGS))


@pytest.mark.parametrize("stop_at", [(2, 0), (1, 2)], ids=["end-of-epoch", "mid-epoch"])
def test_resume_is_exact(mel_store, straight, tmp_path, stop_at):
    """N epochs straight == stop part-way + resume: same parameters, optimizer state and metrics."""
    with pytest.raises(Interrupted) as stopped:
        train(
            small_config(mel_store, tmp_path / "resumed", **RESUME_SETTINGS), should_stop=lambda e, s: (e, s) == stop_at
        )
    assert (stopped.value.epoch, stopped.value.step) == stop_at
    assert len(history(tmp_path / "resumed")) == stop_at[0]
    resumed = resume(tmp_path / "resumed")

    a, b = load_checkpoint(RunFolder(straight).last), load_checkpoint(RunFolder(resumed).last)
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert history(straight) == history(resumed)
    ra, rb = RunFolder(straight).report(), RunFolder(resumed).report()
    assert ra["test"] == rb["test"] and ra["selection"] == rb["selection"]


def test_a_checkpoint_of_the_older_layout_resumes_exactly(mel_store, straight, tmp_path):
    """A last.pt written before the epoch's running sums had names (``sums``: [loss, correct, count]
    by position) resumes as exactly as one of today's."""
    with pytest.raises(Interrupted):
        train(small_config(mel_store, tmp_path / "old", **RESUME_SETTINGS), should_stop=lambda e, s: (e, s) == (1, 2))
    last = RunFolder(tmp_path / "old").last
    ck = load_checkpoint(last)
    running = ck.pop("running")
    assert running["seen"] == 8 and running["loss_sum"] > 0  # two batches of 4 counted
    save_checkpoint(last, {**ck, "sums": [running["loss_sum"], running["correct"], running["seen"]]})
    resumed = resume(tmp_path / "old")
    a, b = load_checkpoint(RunFolder(straight).last), load_checkpoint(RunFolder(resumed).last)
    assert all(torch.equal(a["model"][name], b["model"][name]) for name in a["model"])
    assert history(straight) == history(resumed)


def test_the_default_thread_loader_trains_the_same_model_as_a_dataloader(mel_store, straight, tmp_path):
    """num_workers None (threads reading ahead, the default) and 0 (the DataLoader in the loop) see the
    same batches, so the run is the same to the bit; the resume above is then exact with either."""
    threaded = train(small_config(mel_store, tmp_path / "threads", num_workers=None, **RESUME_SETTINGS))
    a, b = load_checkpoint(RunFolder(straight).last), load_checkpoint(RunFolder(threaded).last)
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert history(straight) == history(threaded)


def test_checkpoint_is_chosen_on_validation_never_on_test(mel_store, tmp_path, monkeypatch):
    """Script validation and test accuracy so their best epochs differ (valid: 2, test: 3)."""
    valid_keys = FeatureStore.open(str(mel_store)).tracks.filter(pl.col("split") == "valid")["key"].to_list()
    script = {"valid": [0.5, 0.9, 0.6], "test": [0.4, 0.5, 0.95]}
    calls = {"valid": 0, "test": 0}
    models_seen = {}
    real = recipe.evaluate

    def scripted(model, loader, **kw):
        result = real(model, loader, **kw)
        split = "valid" if loader.dataset.keys == valid_keys else "test"
        if calls[split] < len(script[split]):  # the per-epoch evaluations; the final report's are real
            result["accuracy"] = script[split][calls[split]]
            models_seen[(split, calls[split] + 1)] = copy.deepcopy(model.state_dict())
        calls[split] += 1
        return result

    monkeypatch.setattr(recipe, "evaluate", scripted)  # the training recipe's evaluations
    run = RunFolder(train(small_config(mel_store, tmp_path / "run", epochs=3)))
    report = run.report()
    assert report["selection"]["split"] == "valid" and report["selection"]["epoch"] == 2
    assert report["optimistic"]["epoch"] == 3 and report["optimistic"]["accuracy"] == 0.95
    best = load_checkpoint(run.best)
    assert best["epoch"] == 2
    for name, value in models_seen[("valid", 2)].items():
        assert torch.equal(best["model"][name], value), name
    assert [r["best"] for r in run.metrics()] == [True, True, False]
    md = (run.path / "report.md").read_text()
    assert "epoch 2, checkpoint chosen on the validation split" in md
    assert "Optimistic: accuracy 95.0 %" in md and "best epoch chosen on the test set" in md


def test_ctrl_c_saves_a_resumable_checkpoint_after_the_current_batch(mel_store, tmp_path):
    def press_ctrl_c(epoch, step):
        if (epoch, step) == (1, 1):
            os.kill(os.getpid(), signal.SIGINT)
        return False

    with pytest.raises(Interrupted) as stopped:
        train(small_config(mel_store, tmp_path / "run", epochs=3, batch_size=4), should_stop=press_ctrl_c)
    assert (stopped.value.epoch, stopped.value.step) == (1, 2)  # the batch running when Ctrl-C came finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ck = load_checkpoint(RunFolder(tmp_path / "run").last)
    assert (ck["epoch"], ck["step"]) == (1, 2)


def test_metrics_lines_are_json_with_the_documented_fields(trained_run):
    first, second = (json.loads(x) for x in (trained_run / "metrics.jsonl").read_text().splitlines())
    assert {
        "epoch",
        "lr",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_accuracy",
        "valid_macro_f1",
        "test_loss",
        "test_accuracy",
        "test_macro_f1",
        "best",
        "seconds",
    } == set(first)
    assert first["lr"] == pytest.approx(1e-3) and second["lr"] == pytest.approx(
        7.5e-4
    )  # cosine 1e-3 -> 5e-4 over 2 epochs


def test_eval_every_skips_evaluations_but_not_the_last_epoch(mel_store, tmp_path):
    run = RunFolder(train(small_config(mel_store, tmp_path / "run", epochs=3, eval_every=2, test_curve=False)))
    assert ["valid_accuracy" in r for r in run.metrics()] == [False, True, True]
    assert not any("test_accuracy" in r for r in run.metrics())
    assert run.report()["optimistic"] is None


def test_training_streams_from_a_url_with_worker_processes(tmp_path):
    """A store by URL (fsspec's in-memory filesystem) trains like a local one, with two forked workers."""
    url = learnable_store(f"memory://{tmp_path.name}/mel.zarr", frames=(160, 220))
    run = RunFolder(train(small_config(url, tmp_path / "run", epochs=1, batch_size=4, num_workers=2)))
    assert run.store_info()["url"] == url
    assert run.report()["epochs_trained"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [2, None], ids=["worker-processes", "reading-threads"])
def test_training_streams_from_s3(s3_env, tmp_path, num_workers):
    """The same from s3:// on a real S3-compatible server (moto on localhost): s3fs objects must not
    cross the fork (worker processes), and one s3fs client serves the reading threads (the default)."""
    _, bucket = new_bucket()
    url = learnable_store(f"s3://{bucket}/mel.zarr", frames=(160, 220))
    run = RunFolder(train(small_config(url, tmp_path / "run", epochs=1, batch_size=4, num_workers=num_workers)))
    assert run.store_info()["url"] == url and run.report()["epochs_trained"] == 1


KILLED_IN_FIRST_EPOCH = """
import sys, time
from pathlib import Path
from tests.train.conftest import small_config
from mrnet.train.loop import train

def hold(epoch, step):  # after the first batch of the first epoch: tell the test, then wait to be killed
    if (epoch, step) == (0, 1):
        Path(sys.argv[3]).touch()
        time.sleep(600)
    return False

train(small_config(sys.argv[1], sys.argv[2], epochs=3, batch_size=4), should_stop=hold)
"""


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(mel_store, straight, tmp_path):
    """kill -9 during the first epoch leaves config.json and store.json but no checkpoint: --resume runs
    it from the beginning with its own config, and the result equals the uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run, ready = tmp_path / "killed", tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_IN_FIRST_EPOCH, str(mel_store), str(run), str(ready)],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.time() + 120
        while not ready.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert ready.exists(), "the child never reached its first batch"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert (run / "config.json").exists() and not RunFolder(run).last.exists()
    resumed = resume(run)
    assert history(straight) == history(resumed)
    a, b = load_checkpoint(RunFolder(straight).last), load_checkpoint(RunFolder(resumed).last)
    assert all(torch.equal(a["model"][name], b["model"][name]) for name in a["model"])
