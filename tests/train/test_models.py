"""The model registry: a name builds a model for a store's frames, with the model's own options."""

from __future__ import annotations

import pytest
import torch

from mrnet.core.errors import UserError
from mrnet.train.presets import tiny
from mrnet.train.models import MODELS, ModelInput, Registered, create_model
from mrnet.train.models.mrnet import MRNet, MRNetConfig
from mrnet.train.setup import build_model

MEL = ModelInput(feature="mel", channels=1, layers=1, dim=48, frame_rate=62.5, num_classes=4)
WAVLM = ModelInput(feature="wavlm", channels=2, layers=3, dim=16, frame_rate=50.0, num_classes=5)
# The layout of each feature profile a model may name (Registered.features): (dim, frames per second).
PROFILES = {"mel128": (128, 86.13), "mel96": (96, 46.875), "mfcc": (20, 43.07), "wave": (1024, 43.07),
            "wave+mfcc": (1044, 43.07)}


def inputs_for(name: str) -> list[ModelInput]:
    """The store layouts model ``name`` reads: one per feature profile it names, or two of any kind."""
    features = MODELS[name].features
    if features is None:
        return [MEL, WAVLM]
    return [ModelInput(feature=f, channels=1, layers=1, dim=PROFILES[f][0], frame_rate=PROFILES[f][1], num_classes=6)
            for f in features]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_for_a_store_and_gives_one_logit_per_class(name):
    """Full size, on the crop its recipe reads (``cfg.crop_frames``; 40 frames for a model of any length)."""
    for inputs in inputs_for(name):
        model = create_model(name, inputs).eval()
        frames = getattr(model.cfg, "crop_frames", 40)
        x = torch.randn(2, inputs.channels, inputs.layers, frames, inputs.dim)
        with torch.no_grad():
            assert model(x).shape == (2, inputs.num_classes), (name, inputs.feature)


def test_every_profile_a_model_names_is_known():
    named = {f for entry in MODELS.values() for f in entry.features or ()}
    assert named == set(PROFILES)


def test_the_store_fixes_the_input_and_the_options_the_rest():
    model = create_model("mrnet", WAVLM, channels=16, embed_dim=8, variant="authors", drop_routes=("H",))
    assert isinstance(model, MRNet)
    assert (model.cfg.in_channels, model.cfg.num_layers, model.cfg.in_dim, model.cfg.num_classes) == (2, 3, 16, 5)
    assert (model.cfg.channels, model.cfg.variant, model.route_names) == (16, "authors", ("L1", "L2", "L3", "M1", "M2", "M3"))


def test_unknown_models_and_options_are_named():
    with pytest.raises(UserError, match="--model 'fcn9': choose one of mrnet, musicnext, musicnext-softmax, nnet1, nnet2, mixnet, fcn5, msecnn, linear"):
        create_model("fcn9", MEL)
    with pytest.raises(UserError, match="--model mrnet has no option.* depth; its options are channels, embed_dim"):
        create_model("mrnet", MEL, depth=3)
    with pytest.raises(UserError, match="cannot build MRNet .*se_bottleneck"):
        create_model("mrnet", MEL, channels=8)


def test_an_entry_whose_options_are_not_config_fields_is_refused():
    with pytest.raises(ValueError, match=r"options \['width'\] are not fields of MRNetConfig"):
        Registered("broken", MRNetConfig, MRNet, options=("width",))


def test_a_run_config_builds_its_model_through_the_registry():
    cfg = tiny("s.zarr", channels=16, embed_dim=8, dropout=0.1)
    model = build_model(cfg, MEL)
    assert (model.cfg.channels, model.cfg.embed_dim, model.cfg.dropout, model.cfg.num_classes) == (16, 8, 0.1, 4)
