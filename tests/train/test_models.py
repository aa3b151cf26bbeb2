"""The model registry: a name builds a model for a store's frames, with the model's own options."""

from __future__ import annotations

import pytest
import torch

from mrnet.core.errors import UserError
from mrnet.train.config import tiny
from mrnet.train.models import MODELS, ModelInput, Registered, create_model
from mrnet.train.models.mrnet import MRNet, MRNetConfig
from mrnet.train.setup import build_model

MEL = ModelInput(feature="mel", channels=1, layers=1, dim=48, frame_rate=62.5, num_classes=4)
WAVLM = ModelInput(feature="wavlm", channels=2, layers=3, dim=16, frame_rate=50.0, num_classes=5)


def test_every_model_builds_for_a_store_and_gives_one_logit_per_class():
    for name in MODELS:
        for inputs in (MEL, WAVLM):
            model = create_model(name, inputs).eval()
            x = torch.randn(2, inputs.channels, inputs.layers, 40, inputs.dim)
            with torch.no_grad():
                assert model(x).shape == (2, inputs.num_classes), name


def test_the_store_fixes_the_input_and_the_options_the_rest():
    model = create_model("mrnet", WAVLM, channels=16, embed_dim=8, variant="authors", drop_routes=("H",))
    assert isinstance(model, MRNet)
    assert (model.cfg.in_channels, model.cfg.num_layers, model.cfg.in_dim, model.cfg.num_classes) == (2, 3, 16, 5)
    assert (model.cfg.channels, model.cfg.variant, model.route_names) == (16, "authors", ("L1", "L2", "L3", "M1", "M2", "M3"))


def test_unknown_models_and_options_are_named():
    with pytest.raises(UserError, match="--model 'fcn9': choose one of mrnet, linear"):
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
