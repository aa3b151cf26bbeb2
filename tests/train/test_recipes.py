"""The baselines' recipes as configuration: presets with the spec's values, staged optimizers that resume
exactly, early stopping, selection rules, fixed input lengths and evaluation units, and each baseline
trained through the loop from a store of its feature kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mrnet.core.errors import UserError
from mrnet.train.augment import Augment, stack_plans
from mrnet.train.config import TrainConfig
from mrnet.train.loop import Interrupted, resume, train, train_step
from mrnet.train.presets import PRESETS, preset
from mrnet.train.runs import RunFolder, load_checkpoint
from tests.helpers import make_store
from tests.train.conftest import small_config

QUICK = dict(num_workers=0, device="cpu")


def history(run) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in RunFolder(run).metrics()]


# --- the presets hold the spec's recipes -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "musicnext-paper",
            dict(
                model="musicnext",
                optimizer="adam",
                lr=1e-4,
                weight_decay=0.0,
                batch_size=50,
                epochs=50,
                time_flip=0.5,
                normalize="global",
                select_metric="last",
                schedule="constant",
            ),
        ),
        (
            "nnet1-paper",
            dict(
                model="nnet1",
                optimizer="adam",
                lr=1e-4,
                weight_decay=0.005,
                batch_size=64,
                epochs=100,
                select_metric="loss",
                patience=20,
                min_delta=0.01,
            ),
        ),
        ("nnet2-paper", dict(model="nnet2", lr=5e-5, weight_decay=0.005, batch_size=64)),
        ("mixnet-paper", dict(model="mixnet", lr=5e-5, weight_decay=0.0, batch_size=32)),
        (
            "fcn5-paper",
            dict(
                model="fcn5",
                optimizer="adam",
                lr=1e-4,
                weight_decay=1e-4,
                batch_size=16,
                epochs=200,
                augment=False,
                stages=((80, "sgd", 1e-3), (100, "sgd", 1e-4), (120, "sgd", 1e-5)),
                select_metric="loss",
            ),
        ),
        ("msecnn-paper", dict(model="msecnn", schedule="stages")),
    ],
)
def test_each_baseline_preset_is_its_recipe(name, expected):
    cfg = preset(name, "s.zarr")
    assert {k: getattr(cfg, k) for k in expected} == expected and cfg.preset == name


def test_every_model_has_a_paper_preset_and_an_option_overrides_it():
    from mrnet.train.models import MODELS

    assert {f"{m}-paper" for m in MODELS if m not in ("mrnet", "linear")} <= set(PRESETS)
    assert preset("nnet2-paper", "s.zarr", epochs=3).epochs == 3


def test_bad_recipe_options_are_named():
    with pytest.raises(UserError, match="--schedule stages needs --stage"):
        TrainConfig(store="s", schedule="stages")
    with pytest.raises(UserError, match="--stage: epochs must increase"):
        TrainConfig(store="s", schedule="stages", stages=((5, "sgd", 1e-3), (3, "sgd", 1e-4)))
    with pytest.raises(UserError, match="--eval-unit 'chunks:0'"):
        TrainConfig(store="s", eval_unit="chunks:0")
    from mrnet.train.models import ModelInput
    from mrnet.train.setup import build_model

    inputs = ModelInput(feature="mel128", channels=1, num_layers=1, dim=128, frame_rate=86.1, num_classes=3)
    with pytest.raises(UserError, match="--model musicnext has no option.*depth.*its options are margin"):
        build_model(TrainConfig(store="s", model="musicnext", normalize="none", model_options={"depth": 3}), inputs)
    assert (
        build_model(
            TrainConfig(store="s", model="musicnext", normalize="none", model_options={"margin": 2}), inputs
        ).cfg.margin
        == 2
    )


# --- staged optimizers, early stopping, selection rules -----------------------------------------------

STAGED = dict(
    epochs=3,
    batch_size=4,
    optimizer="adam",
    lr=1e-3,
    schedule="stages",
    stages=((2, "sgd", 0.05),),
    select_metric="loss",
)


@pytest.fixture(scope="module")
def staged(mel_store, tmp_path_factory):
    return train(small_config(mel_store, tmp_path_factory.mktemp("staged") / "run", **STAGED))


def test_a_stage_changes_the_optimizer_and_starts_from_the_best_checkpoint(mel_store, staged, tmp_path, monkeypatch):
    h = history(staged)
    assert [r["lr"] for r in h] == [1e-3, 1e-3, 0.05]
    last = load_checkpoint(RunFolder(staged).last)
    assert "momentum_buffer" in next(iter(last["optimizer"]["state"].values()))  # SGD's state, not Adam's
    # the third epoch starts from the weights of the better of the first two (by validation loss)
    from mrnet.train import loop, recipe

    loaded = []
    real = recipe.load_checkpoint
    monkeypatch.setattr(recipe, "load_checkpoint", lambda path: loaded.append(real(path)) or loaded[-1])
    notes = []
    reporter = type("Notes", (loop.Reporter,), {"note": lambda self, text: notes.append(text)})()
    train(small_config(mel_store, tmp_path / "again", **STAGED), reporter=reporter)
    best_epoch = 1 + int(np.argmin([r["valid_loss"] for r in h[:2]]))
    assert loaded[0]["epoch"] == best_epoch and f"from the best checkpoint so far (epoch {best_epoch})" in " ".join(
        notes
    )


@pytest.mark.parametrize("stop_at", [(2, 0), (2, 1)], ids=["at-the-stage", "inside-it"])
def test_a_staged_run_resumes_exactly(mel_store, staged, tmp_path, stop_at):
    with pytest.raises(Interrupted):
        train(small_config(mel_store, tmp_path / "r", **STAGED), should_stop=lambda e, s: (e, s) == stop_at)
    resumed = resume(tmp_path / "r")
    a, b = load_checkpoint(RunFolder(staged).last), load_checkpoint(RunFolder(resumed).last)
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert history(staged) == history(resumed)


def test_patience_stops_the_run_and_a_resume_does_not_train_on(mel_store, tmp_path):
    cfg = small_config(mel_store, tmp_path / "run", epochs=6, select_metric="loss", patience=1, min_delta=100.0)
    run = train(cfg)  # nothing improves by 100: the second evaluation is stale, and the run stops there
    report = RunFolder(run).report()
    assert report["epochs_trained"] == 2 and report["selection"]["stopped_early"] == 2
    chosen = report["selection"]["epoch"]  # still the lower validation loss of the two: min_delta is patience's alone
    assert chosen == 1 + int(np.argmin([r["valid_loss"] for r in history(run)]))
    RunFolder(run).report_file.unlink()
    resume(run)
    assert len(history(run)) == 2 and RunFolder(run).report()["selection"]["epoch"] == chosen


def test_select_last_keeps_the_last_epoch_and_loss_the_lowest_validation_loss(mel_store, tmp_path):
    last = RunFolder(train(small_config(mel_store, tmp_path / "last", epochs=3, select_metric="last")))
    assert last.report()["selection"]["epoch"] == 3
    low = RunFolder(train(small_config(mel_store, tmp_path / "loss", epochs=3, select_metric="loss")))
    losses = [r["valid_loss"] for r in low.metrics()]
    assert low.report()["selection"]["epoch"] == 1 + int(np.argmin(losses))


# --- augmentation, the L-softmax path ----------------------------------------------------------------


def test_time_flip_plays_the_crop_backwards_before_the_masks():
    aug = Augment(noise_p=0.0, time_masks=0, feature_masks=0, time_flip=1.0)
    plan = stack_plans([aug.draw(np.random.default_rng(0), frames=5, dim=2)])
    x = torch.arange(10.0).reshape(1, 1, 1, 5, 2)
    assert torch.equal(aug.apply(x, plan), x.flip(3))
    assert "flip" not in Augment().draw(np.random.default_rng(0), frames=5, dim=2)  # other settings draw as they did


def test_training_logits_see_the_runs_input_normalisation():
    from mrnet.train import normalize

    class Margin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)
            self.seen = None

        def forward(self, x):
            return self.linear(x.mean(dim=(1, 2, 3)))

        def training_logits(self, x, y):
            self.seen = x
            return self.forward(x)

    model = normalize.attach(
        Margin(), normalize.InputNorm("stored", mean=torch.full((1, 1, 2), 5.0), std=torch.full((1, 1, 2), 2.0))
    )
    x = torch.full((3, 1, 1, 4, 2), 7.0)
    train_step(
        model, torch.optim.SGD(model.parameters(), lr=0.1), None, x, torch.tensor([0, 1, 0]), torch.device("cpu"), False
    )
    assert torch.equal(model.seen, torch.ones_like(x))  # (7 - 5) / 2


# --- each baseline through the loop, from a store of its kind -----------------------------------------


def test_nnet2_trains_on_fixed_windows_and_tests_the_midpoint_window(tmp_path):
    store = make_store(tmp_path / "mfcc.zarr", feature="mfcc", dim=20, frames=(300, 340))
    run = train(preset("nnet2-paper", str(store), out=str(tmp_path / "run"), epochs=2, batch_size=8, **QUICK))
    cfg = json.loads((run / "config.json").read_text())
    assert (
        cfg["eval_unit"] == "middle" and cfg["normalize"] == "none" and cfg["class_weights"] == "none"
    )  # the authors' window
    assert (
        RunFolder(run).report()["model"]["parameters"] == 1_876_040 - 8 * 65 + 3 * 65
    )  # the spec's 8-genre count, for 3 genres


def test_musicnext_trains_with_the_margin_and_scores_ten_fragments(tmp_path):
    store = make_store(tmp_path / "mel128.zarr", feature="mel128", dim=128, frames=(2600, 2650), per_genre=6)
    cfg = preset(
        "musicnext-paper", str(store), out=str(tmp_path / "run"), epochs=1, batch_size=30, eval_batch_size=3, **QUICK
    )
    run = train(cfg)
    saved = json.loads((run / "config.json").read_text())
    assert saved["eval_unit"] == "chunks:10" and saved["normalize"] == "global" and saved["epoch_mode"] == "fragments"
    assert json.loads((run / "normalization.json").read_text())["mode"] == "global"
    # the epoch is every fragment of the 12 training clips, 10 each: 120 at batch 30, 4 steps (one random crop each: 1 step)
    assert int(load_checkpoint(RunFolder(run).last)["model"]["head.step"]) == 4
