"""Input normalisation: a recorded choice; stored statistics come from the training split only and are
applied the same way in training, evaluation and mrnet-predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mrnet.core.errors import UserError
from mrnet.store import FeatureStore
from mrnet.train import normalize
from mrnet.train.augment import Augment, stack_plans
from mrnet.train.crops import TrackDataset
from mrnet.train.evaluate import evaluate
from mrnet.train.loader import length_batches, make_loader
from mrnet.train.loop import train
from mrnet.train.predict import Predictor
from mrnet.train.runs import RunFolder, load_checkpoint
from mrnet.train.splits import split_tracks
from tests.train.conftest import learnable_store, small_config


@pytest.fixture(scope="module")
def offset_store(tmp_path_factory):
    """Official split, features far from centred (as real Mel is), with statistics."""
    return learnable_store(tmp_path_factory.mktemp("stores") / "offset.zarr", frames=(160, 220), offset=5.0)


def direct(store_path, tracks):
    store = FeatureStore.open(str(store_path))
    frames = np.concatenate([store.read(k).astype(np.float64) for k in tracks["key"]], axis=2)
    return frames.mean(axis=2), frames.std(axis=2)


def test_stored_statistics_are_the_training_splits_recorded_in_the_run(offset_store, tmp_path):
    run = train(small_config(offset_store, tmp_path / "run", epochs=1, normalize="stored"))
    record = json.loads((run / "normalization.json").read_text())
    splits = split_tracks(FeatureStore.open(str(offset_store)).tracks)
    mean, std = direct(offset_store, splits.train)
    np.testing.assert_allclose(record["mean"], mean, atol=1e-9)
    np.testing.assert_allclose(record["std"], std, rtol=1e-6)
    assert record["tracks"] == splits.train.height and record["frames"] == int(splits.train["frames"].sum())
    everything = direct(offset_store, FeatureStore.open(str(offset_store)).tracks)[0]
    assert not np.allclose(record["mean"], everything)  # valid and test frames left out
    # the checkpoint carries the same numbers, and the model's own instance norm is off
    best = load_checkpoint(RunFolder(run).best)["model"]
    np.testing.assert_allclose(best["input_norm.mean"][:, :, 0].numpy(), mean, rtol=1e-6)
    assert json.loads((run / "config.json").read_text())["normalize"] == "stored"
    assert json.loads((run / "report.json").read_text())["normalize"] == "stored"


def test_global_statistics_are_one_mean_and_std_per_layer_over_every_feature(offset_store, tmp_path):
    run = train(small_config(offset_store, tmp_path / "run", epochs=1, normalize="global"))
    record = json.loads((run / "normalization.json").read_text())
    store = FeatureStore.open(str(offset_store))
    train_tracks = split_tracks(store.tracks).train
    values = np.concatenate(
        [store.read(k).astype(np.float64) for k in train_tracks["key"]], axis=2
    )  # (C, L, frames, D)
    mean, std = np.asarray(record["mean"]), np.asarray(record["std"])
    for layer in range(values.shape[1]):
        np.testing.assert_allclose(
            mean[0, layer], values[0, layer].mean(), atol=1e-9
        )  # the same value for every feature
        np.testing.assert_allclose(std[0, layer], values[0, layer].std(), rtol=1e-6)
    assert record["mode"] == "global"


def test_each_fold_normalises_with_its_own_training_folds(fold_store, tmp_path):
    run = train(small_config(fold_store, tmp_path / "run", epochs=1, fold=1, normalize="stored"))
    record = json.loads((run / "normalization.json").read_text())
    train_tracks = split_tracks(FeatureStore.open(str(fold_store)).tracks, fold=1).train
    assert set(train_tracks["fold"].to_list()) == {0}  # 3 folds: test 1, valid 2
    np.testing.assert_allclose(record["mean"], direct(fold_store, train_tracks)[0], atol=1e-9)


def test_predict_normalises_exactly_as_training_evaluated(offset_store, tmp_path):
    run = train(small_config(offset_store, tmp_path / "run", epochs=2, normalize="stored"))
    report = json.loads((run / "report.json").read_text())
    predictor = Predictor.open(run)
    record = json.loads((run / "normalization.json").read_text())
    np.testing.assert_allclose(predictor.model.input_norm.mean[:, :, 0].numpy(), record["mean"], rtol=1e-6)
    np.testing.assert_allclose(predictor.model.input_norm.std[:, :, 0].numpy(), record["std"], rtol=1e-6)
    # the predictor's model, on the store's test tracks, gives the report's test numbers to the bit
    store = FeatureStore.open(str(offset_store))
    test = split_tracks(store.tracks).test
    dataset = TrackDataset(store.location, test, [0])
    batches = make_loader(dataset, length_batches(dataset.frames, 8), num_workers=0, device=torch.device("cpu"), seed=0)
    weights = torch.tensor(list(report["class_weights"].values()))
    again = evaluate(
        predictor.model, batches, num_classes=len(report["genres"]), device=torch.device("cpu"), class_weights=weights
    )
    assert (
        again["loss"] == pytest.approx(report["test"]["loss"], rel=1e-6)
        and again["accuracy"] == report["test"]["accuracy"]
    )
    # and what it applies is (x - mean) / std in front of the model
    x = torch.from_numpy(store.read(test["key"][0]).astype(np.float32))[None]
    with torch.no_grad():
        manual = (x - torch.tensor(record["mean"]).float()[:, :, None]) / torch.tensor(record["std"]).float()[
            :, :, None
        ]
        torch.testing.assert_close(predictor.model.input_norm(x), manual)


def test_the_default_follows_the_feature_kind_and_is_recorded(mel_store, wavlm_store, tmp_path):
    mel = train(small_config(mel_store, tmp_path / "mel", epochs=1))
    wavlm = train(small_config(wavlm_store, tmp_path / "wavlm", epochs=1))
    assert json.loads((mel / "config.json").read_text())["normalize"] == normalize.DEFAULTS["mel"]
    assert json.loads((wavlm / "config.json").read_text())["normalize"] == "instance"  # the authors', unmeasured here
    assert json.loads((wavlm / "normalization.json").read_text()) == {"mode": "instance"}


@pytest.mark.parametrize("mode,stem_norm", [("instance", True), ("stored", False), ("none", False)])
def test_mrnet_keeps_its_stem_instance_norm_only_for_instance(mode, stem_norm):
    from mrnet.train.models import ModelInput
    from mrnet.train.presets import tiny
    from mrnet.train.setup import build_model

    model = build_model(
        tiny("s.zarr", normalize=mode, model_options={"width": 16, "embed_dim": 8}),
        ModelInput("mel", 1, 1, 48, 62.5, 3),
    )
    assert model.cfg.instance_norm is stem_norm
    assert hasattr(model, "input_norm") is (mode == "stored")


def test_stored_on_a_store_without_statistics_is_refused_with_the_command_that_adds_them(tmp_path):
    path = learnable_store(tmp_path / "old.zarr", frames=(160, 220), with_statistics=False)
    with pytest.raises(UserError, match=r"no feature statistics.*mrnet-store stats"):
        train(small_config(path, tmp_path / "run", epochs=1, normalize="stored"))
    assert not (tmp_path / "run").exists()
    train(small_config(path, tmp_path / "run2", epochs=1, normalize="none"))  # the other choices still train


def test_a_model_refuses_a_normalisation_it_cannot_use():
    from mrnet.train.presets import tiny

    with pytest.raises(UserError, match="--normalize instance: --model linear trains with none or stored"):
        tiny("s.zarr", model="linear", normalize="instance")


def test_augmentation_is_relative_to_the_features_own_scale():
    """Noise and masks follow any per-feature affine change of the input: augment(a x + b) = a augment(x) + b."""
    aug = Augment(noise_p=1.0, time_masks=2, time_mask_frac=0.2, feature_masks=2, feature_mask_frac=0.2)
    plans = stack_plans([aug.draw(np.random.default_rng(i), frames=40, dim=8) for i in range(3)])
    x = torch.randn(3, 1, 2, 40, 8)
    a, b = torch.rand(1, 1, 2, 1, 8) * 50 + 0.1, torch.randn(1, 1, 2, 1, 8) * 100
    torch.testing.assert_close(aug.apply(a * x + b, plans), a * aug.apply(x, plans) + b, rtol=1e-4, atol=1e-3)
