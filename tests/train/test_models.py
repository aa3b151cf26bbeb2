"""The model registry: a name builds a model for a store's frames, with the model's own options."""

from __future__ import annotations

import pytest
import torch

from mrnet.core.errors import UserError
from mrnet.train.models import MODELS, ModelInput, Registered, create_model
from mrnet.train.models.mrnet import MRNet, MRNetConfig
from mrnet.train.presets import tiny
from mrnet.train.setup import build_model

MEL = ModelInput(feature="mel", channels=1, num_layers=1, dim=48, frame_rate=62.5, num_classes=4)
WAVLM = ModelInput(feature="wavlm", channels=2, num_layers=3, dim=16, frame_rate=50.0, num_classes=5)
# The layout of each feature profile a model may name (Registered.features): (dim, frames per second).
PROFILES = {
    "mel128": (128, 86.13),
    "mel96": (96, 46.875),
    "mfcc": (20, 43.07),
    "wave": (1024, 43.07),
    "wave+mfcc": (1044, 43.07),
    "mfcc-window": (20, 43.07),
    "wave+mfcc-window": (1044, 43.07),
}


def inputs_for(name: str) -> list[ModelInput]:
    """The store layouts model ``name`` reads: one per feature profile it names, or two of any kind."""
    features = MODELS[name].features
    if features is None:
        return [MEL, WAVLM]
    return [
        ModelInput(feature=f, channels=1, num_layers=1, dim=PROFILES[f][0], frame_rate=PROFILES[f][1], num_classes=6)
        for f in features
    ]


def test_the_model_choices_keep_their_declared_order():
    """--model lists the models in the order train/models/__init__.py imports their files, MRNet first and the
    linear probe last (an import sorter once turned it alphabetical)."""
    assert list(MODELS) == [
        "mrnet",
        "musicnext-softmax",
        "musicnext",
        "nnet1",
        "nnet2",
        "mixnet",
        "fcn5",
        "msecnn",
        "linear",
    ]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_for_a_store_and_gives_one_logit_per_class(name):
    """Full size, on the crop its recipe reads (``cfg.crop_frames``; 40 frames for a model of any length)."""
    for inputs in inputs_for(name):
        model = create_model(name, inputs).eval()
        frames = getattr(model.cfg, "crop_frames", 40)
        x = torch.randn(2, inputs.channels, inputs.num_layers, frames, inputs.dim)
        with torch.no_grad():
            assert model(x).shape == (2, inputs.num_classes), (name, inputs.feature)


def test_every_profile_a_model_names_is_known():
    named = {f for entry in MODELS.values() for f in entry.features or ()}
    assert named == set(PROFILES)


def test_the_store_fixes_the_input_and_the_options_the_rest():
    model = create_model("mrnet", WAVLM, width=16, embed_dim=8, variant="authors", drop_routes=("H",))
    assert isinstance(model, MRNet)
    assert (model.cfg.in_channels, model.cfg.num_layers, model.cfg.in_dim, model.cfg.num_classes) == (2, 3, 16, 5)
    assert (model.cfg.width, model.cfg.variant, model.route_names) == (
        16,
        "authors",
        ("L1", "L2", "L3", "M1", "M2", "M3"),
    )


def test_unknown_models_and_options_are_named():
    with pytest.raises(
        UserError,
        match="--model 'fcn9': choose one of mrnet, musicnext-softmax, musicnext, nnet1, nnet2, mixnet, fcn5, msecnn, linear",
    ):
        create_model("fcn9", MEL)
    with pytest.raises(UserError, match="--model mrnet has no option.* depth; its options are width, embed_dim"):
        create_model("mrnet", MEL, depth=3)
    with pytest.raises(UserError, match="cannot build MRNet .*se_bottleneck"):
        create_model("mrnet", MEL, width=8)


def test_an_entry_whose_options_are_not_config_fields_is_refused():
    with pytest.raises(ValueError, match=r"options \['channels'\] are not fields of MRNetConfig"):
        Registered("broken", MRNetConfig, MRNet, options=("channels",))


def test_a_run_config_builds_its_model_through_the_registry():
    cfg = tiny("s.zarr", model_options={"width": 16, "embed_dim": 8, "dropout": 0.1})
    model = build_model(cfg, MEL)
    assert (model.cfg.width, model.cfg.embed_dim, model.cfg.dropout, model.cfg.num_classes) == (16, 8, 0.1, 4)


# ----------------------------------------------------------------------------- every model learns


def _randn(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * scale + shift


def _windows(dim: int) -> torch.Tensor:
    """NNET's windows: waveform samples in [-1, 1] (the first 1024 values), MFCC-like values after them."""
    x = torch.rand(4, 1, 1, 256, dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
    if dim != 1024:
        x[..., -20:] = _randn(4, 1, 1, 256, 20, scale=30, shift=5)
    return x


_NNET = dict(num_classes=3, widths_1d=(4, 4, 4, 8), width_2d=8, hidden=(16, 8), dropout=0.0)
_MUSICNEXT = dict(
    num_classes=3, depths=(1, 1, 1, 1), dims=(4, 8, 8, 8), lambda_gamma=1e-1
)  # lambda falls under 1: the margin is on
_FCN = dict(num_classes=3, widths=(2, 4, 4, 4, 4), dropout=0.0)  # the full 29 s clip is the cost: ~50 ms a step
#: A tiny config of each registered model, a batch it reads (labels 0, 1, 2, 0, ...) and the Adam steps it
#: needs to learn that batch by heart. A new model adds its line here (the test below names a missing one).
TINY_CASES = {
    "mrnet": (
        dict(in_dim=8, num_layers=2, width=16, embed_dim=8, num_classes=3, dropout=0.0),
        lambda: _randn(6, 1, 2, 16, 8),
        60,
    ),
    "musicnext": (_MUSICNEXT, lambda: _randn(6, 1, 1, 256, 128), 40),
    "musicnext-softmax": (_MUSICNEXT, lambda: _randn(6, 1, 1, 256, 128), 40),
    "nnet1": ({**_NNET, "in_dim": 1024}, lambda: _windows(1024), 30),
    "nnet2": ({**_NNET, "in_dim": 20}, lambda: _randn(4, 1, 1, 256, 20, scale=30, shift=5), 30),
    "mixnet": ({**_NNET, "in_dim": 1044}, lambda: _windows(1044), 30),
    "fcn5": (_FCN, lambda: _randn(3, 1, 1, 1366, 96, scale=20, shift=-40), 25),
    "msecnn": (_FCN, lambda: _randn(3, 1, 1, 1366, 96, scale=20, shift=-40), 25),
    "linear": (dict(in_dim=8, num_layers=2, num_classes=3), lambda: _randn(6, 1, 2, 16, 8), 60),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_overfits_one_batch(name):
    """The model, as its registry entry builds it, learns one batch by heart (the loop's step: its
    ``training_logits`` where it has them, e.g. MusicNeXt's L-softmax margin)."""
    assert name in TINY_CASES, f"add a tiny case for --model {name} to TINY_CASES"
    options, batch, steps = TINY_CASES[name]
    entry = MODELS[name]
    torch.manual_seed(0)
    model = entry.model(entry.config(**options))
    x = batch()
    y = torch.arange(len(x)) % 3
    step = getattr(model, "training_logits", lambda x, y: model(x))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(step(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses[:: max(steps // 6, 1)]
    with torch.no_grad():
        assert (model.eval()(x).argmax(1) == y).all()


def test_each_entry_declares_how_it_is_fitted_reported_and_preset():
    from mrnet.train.models import PROBE, is_probe, title
    from mrnet.train.presets import PRESETS, default_preset

    assert (
        [n for n, e in MODELS.items() if e.fitting == PROBE] == ["linear"]
        and is_probe("linear")
        and not is_probe("mrnet")
    )
    assert {title(n) for n in MODELS} >= {"MRNet", "Linear probe", "FCN-5", "MusicNeXt-S"} and title(
        "retired"
    ) == "retired"
    assert all(e.preset is None or e.preset in PRESETS for e in MODELS.values())
    assert default_preset(None) == default_preset("mrnet") == "paper"
    assert (
        tiny("s.zarr", model="linear").augment
        and not __import__("mrnet.train.presets").train.presets.preset("tiny", "s.zarr", model="linear").augment
    )


def test_a_model_is_registered_once():
    from mrnet.train.models.registry import register_model

    with pytest.raises(ValueError, match="--model mrnet is registered twice"):
        register_model("mrnet", config=MRNetConfig)(type("Other", (torch.nn.Module,), {}))
    with pytest.raises(ValueError, match="fitting 'magic'"):
        Registered("x", MRNetConfig, MRNet, fitting="magic")


def test_the_model_file_of_the_architecture_page_registers_and_trains_a_batch():
    """docs/architecture.md's whole model file: declared by its decorator alone, built by name, learns."""
    import re
    import sys
    import textwrap
    import types
    from pathlib import Path

    from mrnet.train.models.registry import REGISTRY

    page = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    code = textwrap.dedent(re.search(r"```python\n(.*?)```", page, re.S).group(1))
    module = types.ModuleType("mrnet_docs_pool")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, "architecture.md", "exec"), module.__dict__)
        assert MODELS["pool"].title == "Mean pool" and MODELS["pool"].options == ("dropout",)
        model = create_model("pool", MEL, dropout=0.0)
        x, y = torch.randn(6, 1, 1, 20, 48), torch.arange(6) % 4
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(100):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert (model(x).argmax(1) == y).all()
        with pytest.raises(UserError, match="Pool reads mono frames"):
            create_model("pool", WAVLM)
    finally:
        REGISTRY.pop("pool", None)
        sys.modules.pop(module.__name__, None)


def test_model_options_are_nested_under_the_model_and_older_configs_map():
    """Every model's options live in ``model_options`` (MRNet's width is ``width``, never ``channels``,
    which are the store's audio channels); a config.json from before keeps its meaning."""
    from mrnet.train.config import TrainConfig

    old = {
        "store": "s.zarr",
        "model": "mrnet",
        "channels": 24,
        "embed_dim": 8,
        "variant": "authors",
        "drop_routes": ["H"],
        "dropout": 0.2,
    }
    cfg = TrainConfig.from_json(old)
    assert cfg.model_options == {
        "width": 24,
        "embed_dim": 8,
        "variant": "authors",
        "drop_routes": ("H",),
        "dropout": 0.2,
    }
    assert TrainConfig.from_json(cfg.to_json()) == cfg and "channels" not in cfg.to_json()
    assert build_model(cfg, WAVLM).cfg.width == 24 and build_model(cfg, WAVLM).route_names == (
        "L1",
        "L2",
        "L3",
        "M1",
        "M2",
        "M3",
    )
    # a baseline's run of then carried MRNet's defaults at the top level, which it never used
    assert (
        TrainConfig.from_json({"store": "s.zarr", "model": "fcn5", "channels": 512, "dropout": 0.5}).model_options == {}
    )
    with pytest.raises(UserError, match="--model fcn5 has no option.* width; its options are none"):
        TrainConfig(store="s.zarr", model="fcn5", model_options={"width": 32})
