"""Each model trains with its own published recipe (issue 20, items 2 and 6): the default preset, the
config resolved in full, the CPU-time warning, the class weights, MusicNeXt's fragment epochs, the
NNET test window and the waveform / MFCC halves of MixNet's augmentation."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from mrnet.train import loop
from mrnet.train.augment import Augment, PartAugment, for_run, stack_plans
from mrnet.train.config import TrainConfig
from mrnet.train.crops import EvalUnit, fragments
from mrnet.train.estimate import LIMIT_SECONDS, too_long
from mrnet.train.loop import Interrupted, train
from mrnet.train.models import MODELS, ModelInput
from mrnet.train.presets import default_preset, preset
from mrnet.train.setup import label_weights
from tests.train.conftest import small_config
from tests.train.test_cli import mrnet_train
from tests.train.util import dataset

# --- item 2: a model's own recipe ------------------------------------------------------------------


@pytest.mark.parametrize("model", [m for m in MODELS if m not in ("mrnet", "linear")])
def test_a_baseline_trains_with_its_own_recipe_unless_told(model):
    assert default_preset(model) == f"{model}-paper"
    assert (
        default_preset("mrnet") == "paper" and default_preset("linear") == "paper"
    )  # the probe has no recipe of its own


def test_show_config_resolves_every_choice_and_records_another_models_recipe(mel_store, tmp_path):
    own = mrnet_train("--store", mel_store, "--model", "msecnn", "--show-config")
    assert own.exit_code == 0, own.output
    cfg = json.loads(own.output)
    assert cfg["preset"] == "msecnn-paper" and cfg["schedule"] == "stages" and cfg["class_weights"] == "none"
    assert (cfg["normalize"], cfg["select_metric"], cfg["eval_unit"]) == ("none", "loss", "center")  # null before
    assert cfg["out"] is not None
    other = mrnet_train("--store", mel_store, "--model", "msecnn", "--preset", "paper", "--show-config")
    assert (
        json.loads(other.output)["preset"] == "paper" and json.loads(other.output)["model"] == "msecnn"
    )  # allowed, recorded
    mrnet = json.loads(mrnet_train("--store", mel_store, "--show-config").output)
    assert (mrnet["normalize"], mrnet["select_metric"], mrnet["eval_unit"]) == (
        "none",
        "accuracy",
        "whole",
    )  # Mel: no instance norm
    elsewhere = json.loads(
        mrnet_train("--store", tmp_path / "not-yet.zarr", "--model", "nnet2", "--show-config").output
    )
    assert elsewhere["eval_unit"] == "middle" and elsewhere["normalize"] is None  # the store decides; it is not there


def test_the_estimate_of_a_long_cpu_recipe_names_the_time_and_the_cpu_preset():
    note = too_long(1.5, steps=40, epochs=1000, model="mrnet")
    assert "16.7 h" in note and "1000 epochs x 40 batches x 1.50 s" in note and "--preset tiny" in note
    assert "--preset small --model fcn5" in too_long(1.5, steps=40, epochs=1000, model="fcn5")
    assert (
        too_long(LIMIT_SECONDS / 400, steps=20, epochs=20, model="mrnet") is None
    )  # exactly an hour: said only over it


def test_a_cpu_run_of_a_long_recipe_says_so_in_its_first_epoch(mel_store, tmp_path):
    notes = []
    reporter = type("Notes", (loop.Reporter,), {"note": lambda self, text: notes.append(text)})()
    with pytest.raises(
        Interrupted
    ):  # 10^5 epochs (the most --epochs allows): stopped after the fifth batch, once the estimate is out
        train(
            small_config(mel_store, tmp_path / "run", epochs=10**5, batch_size=2),
            reporter=reporter,
            should_stop=lambda epoch, step: step == 5,
        )
    said = [n for n in notes if "on this CPU" in n]
    assert len(said) == 1 and "100000 epochs x 6 batches" in said[0] and "--preset tiny" in said[0]
    notes.clear()
    train(small_config(mel_store, tmp_path / "short", epochs=1, batch_size=2), reporter=reporter)
    assert not [n for n in notes if "on this CPU" in n]


# --- item 6e: class weights ---------------------------------------------------------------------------


def test_class_weights_balanced_or_none_and_each_preset_its_papers():
    tracks = pl.DataFrame({"label": [0, 0, 0, 1]}, schema={"label": pl.Int32})
    inputs = ModelInput(feature="mel", channels=1, num_layers=1, dim=4, frame_rate=50.0, num_classes=3)
    cpu = torch.device("cpu")
    assert label_weights(TrainConfig(store="s"), inputs, tracks, cpu).tolist() == [1.0, 3.0, 0.0]
    assert label_weights(TrainConfig(store="s", class_weights="none"), inputs, tracks, cpu).tolist() == [1.0, 1.0, 0.0]
    assert preset("paper", "s").class_weights == "balanced"  # MRNet's paper: cross-entropy with class weights
    for name in ("musicnext-paper", "nnet1-paper", "nnet2-paper", "mixnet-paper", "fcn5-paper", "msecnn-paper"):
        assert preset(name, "s").class_weights == "none", name
    with pytest.raises(Exception, match="--class-weights 'inverse'"):
        TrainConfig(store="s", class_weights="inverse")


# --- item 6a: MusicNeXt's epoch covers every fragment -------------------------------------------------


def test_an_epoch_of_fragments_reads_every_fragment_of_every_track_once(mel_store, recording):
    store_tracks = dataset(mel_store, crop=40)[1]
    table = fragments(store_tracks, 40)
    ds, _ = dataset(mel_store, crop=40)
    ds = type(ds)(ds.location, table, [0], crop=40, seed=0)
    assert len(ds) == sum(max(1, n // 40) for n in store_tracks["frames"]) and len(ds) > len(store_tracks)
    recording.clear()
    for i in range(len(ds)):
        ds[(0, i)]
    read = sorted((key, start) for key, start, _, _ in recording)
    expected = sorted(
        (k, 40 * j) for k, n in zip(store_tracks["key"], store_tracks["frames"]) for j in range(max(1, n // 40))
    )
    assert read == expected
    assert preset("musicnext-paper", "s").epoch_mode == "fragments" and preset("paper", "s").epoch_mode == "crops"


# --- item 6c: the NNET test window starts at the middle ----------------------------------------------


def test_the_nnet_window_starts_at_the_midpoint_as_the_authors_cut_it():
    frames = 1292  # 30 s at 44.1 kHz, 1024 samples a frame
    assert EvalUnit("middle", crop=256).starts(frames) == [frames // 2]  # audio[len/2 : len/2 + 2^18]
    assert EvalUnit("center", crop=256).starts(frames) == [(frames - 256) // 2]
    for name in ("nnet1-paper", "nnet2-paper", "mixnet-paper"):
        assert preset(name, "s").eval_unit == "middle"
    assert MODELS["nnet1"].evaluation == "middle"


# --- item 6b: MixNet's two halves augmented as their own models ----------------------------------------


def test_mixnet_masks_the_mfcc_half_only_and_augments_the_waveform_as_nnet1():
    cfg = preset("mixnet-paper", "s")
    aug = for_run(cfg, "wave+mfcc", 1044)
    assert isinstance(aug, PartAugment)
    (w0, w1, wave), (m0, m1, mfcc) = aug.parts
    assert (w0, w1, m0, m1) == (0, 1024, 1024, 1044)
    assert (wave.noise_p, wave.time_masks, wave.time_mask_frac, wave.feature_masks) == (0.5, 1, 0.15, 0)  # NNET1's
    assert (mfcc.time_masks, mfcc.time_mask_frac, mfcc.feature_masks, mfcc.feature_mask_frac) == (
        1,
        30 / 256,
        1,
        2 / 20,
    )  # NNET2's
    plans = stack_plans([aug.draw(np.random.default_rng(i), frames=256, dim=1044) for i in range(64)])
    starts, widths = plans["1.feature"][..., 0], plans["1.feature"][..., 1]  # drawn within the 20 coefficients
    assert (
        int(widths.max()) == 2 and int((starts + widths).max()) <= 20 and plans["0.feature"].numel() == 0
    )  # none on the samples
    x = torch.randn(4, 1, 1, 256, 1044)
    assert (
        aug.apply(x, stack_plans([aug.draw(np.random.default_rng(i), frames=256, dim=1044) for i in range(4)])).shape
        == x.shape
    )
    # nnet2 on a wave+mfcc store gets the same split; on an mfcc store, one augmentation over the frame
    assert isinstance(for_run(preset("nnet2-paper", "s"), "wave+mfcc", 1044), PartAugment)
    assert isinstance(for_run(preset("nnet2-paper", "s"), "mfcc", 20), Augment)
    assert isinstance(for_run(cfg, "wave+mfcc-window", 1044), PartAugment)  # the store of the authors' MFCC too


def test_a_config_from_before_the_class_weights_and_epoch_mode_fingerprints_as_what_it_trained():
    from mrnet.train import fingerprint

    config = small_config("s.zarr", "runs/a").to_json()
    store = {"provenance": {"feature": "mel"}, "genres": ["a", "b"]}
    old = {k: v for k, v in config.items() if k not in ("class_weights", "epoch_mode", "wave_augment", "seeds")}
    assert fingerprint.fingerprint(old, store) == fingerprint.fingerprint(config, store)
    assert fingerprint.fingerprint({**config, "seeds": [0, 1]}, store) == fingerprint.fingerprint(config, store)
    for change in ({"class_weights": "none"}, {"epoch_mode": "fragments"}, {"wave_augment": {"noise_p": 0.5}}):
        assert fingerprint.fingerprint({**config, **change}, store) != fingerprint.fingerprint(config, store), change
