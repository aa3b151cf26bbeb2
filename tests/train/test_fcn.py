"""FCN-5 and MsE-CNN (mrnet.train.models.fcn): sizes pinned to the spec, shapes on the 96 x 1366
clip, the two MsE connections, input lengths, refusals, learning.

Sizes are counted on full-size models (under a million parameters, built in milliseconds); everything
that runs uses tiny widths on the real 96 x 1366 clip, so the pools are the paper's.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.train.models import ModelInput, count_parameters, create_model
from mrnet.train.models.fcn import FCN5, FCNConfig, MsECNN, MsECNNConfig

COUNTS = {"fcn5": 447_732, "dense": 953_446, "carry": 470_182}  # input BatchNorm(1) included
TINY = dict(num_classes=3, widths=(4, 6, 6, 6, 4))
MEL96 = ModelInput(feature="mel96", channels=1, num_layers=1, dim=96, frame_rate=46.875, num_classes=50)


def tiny(connection: str | None = None, **kw):
    torch.manual_seed(0)
    if connection is None:
        return FCN5(FCNConfig(**{**TINY, **kw}))
    return MsECNN(MsECNNConfig(**{**TINY, **kw}, connection=connection))


def clips(batch: int = 4, frames: int = 1366, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, 1, frames, 96, generator=torch.Generator().manual_seed(seed)) * 20 - 40


def shapes_of(model, x) -> list[tuple[int, ...]]:
    """The map after each level's pool: max_pool2d is called once per level."""
    seen = []
    real = F.max_pool2d

    def spy(t, *args, **kw):
        out = real(t, *args, **kw)
        seen.append(tuple(out.shape[1:]))
        return out

    F.max_pool2d = spy
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        F.max_pool2d = real
    return seen


# ----------------------------------------------------------------------------- sizes


def test_sizes_match_the_spec():
    assert count_parameters(create_model("fcn5", MEL96)) == COUNTS["fcn5"]
    for connection in ("dense", "carry"):
        assert count_parameters(create_model("msecnn", MEL96, connection=connection)) == COUNTS[connection]


def test_layers_match_the_spec_tables():
    fcn = FCN5(FCNConfig())
    assert [count_parameters(m) for m in (fcn.input_bn, *fcn.layers, fcn.head)] == [
        2,
        768,
        74_112,
        147_840,
        147_840,
        73_920,
        3_250,
    ]
    dense = MsECNN(MsECNNConfig())
    assert [m[0].in_channels for m in dense.layers] == [1, 65, 193, 321, 449]
    assert [count_parameters(m) for m in (*dense.layers, dense.head)] == [
        768,
        75_264,
        222_720,
        370_176,
        258_816,
        25_700,
    ]
    carry = MsECNN(MsECNNConfig(connection="carry"))
    assert [m[0].in_channels for m in carry.layers] == [1, 64, 128, 128, 128]
    assert carry.head.in_features == dense.head.in_features == 513  # "almost eight times" FCN-5's 64


# ----------------------------------------------------------------------------- shapes


def test_the_clip_pools_to_one_by_one():
    assert shapes_of(tiny(), clips(batch=2)) == [(4, 48, 341), (6, 24, 85), (6, 12, 21), (6, 4, 4), (4, 1, 1)]
    carried = [(5, 48, 341), (11, 24, 85), (17, 12, 21), (23, 4, 4), (27, 1, 1)]  # 1 + the widths so far
    assert shapes_of(tiny("dense"), clips(batch=2)) == carried
    assert shapes_of(tiny("carry"), clips(batch=2)) == carried


@pytest.mark.parametrize("frames", [1280, 1366, 1813, 2600])
def test_lengths_from_1280_frames(frames):
    """1,280-2,559 frames end at one column; a longer input ends with a few and takes their max."""
    for model in (tiny(), tiny("dense")):
        with torch.no_grad():
            assert model.eval()(clips(batch=2, frames=frames)).shape == (2, 3)
    if frames == 2600:
        assert shapes_of(tiny(), clips(batch=1, frames=frames))[-1] == (4, 1, 2)


def test_wrong_input_is_refused():
    model = tiny()
    with pytest.raises(
        ValueError, match=r"FCN-5 expects \(B, 1, 1, T, 96\).*T >= 1280 \(1366 frames.*got \(2, 1, 1, 1000, 96\)"
    ):
        model(clips(batch=2, frames=1000))
    with pytest.raises(ValueError, match=r"MsE-CNN expects.*got \(2, 1, 1, 1366, 128\)"):
        tiny("dense")(torch.randn(2, 1, 1, 1366, 128))
    mel128 = ModelInput(feature="mel128", channels=1, num_layers=1, dim=128, frame_rate=86.13, num_classes=10)
    for name in ("fcn5", "msecnn"):
        with pytest.raises(UserError, match=r"--features mel96\);.*'mel128' frames.*dim=128"):
            create_model(name, mel128)
    with pytest.raises(UserError, match="connection 'skip' is not one of 'dense', 'carry'"):
        create_model("msecnn", MEL96, connection="skip")


# ----------------------------------------------------------------------------- connections


def test_carry_only_keeps_the_fcn5_chain():
    """With FCN-5's weights, the carry-only MsE-CNN's last 64 carried features are FCN-5's features."""
    fcn, carry = tiny(), tiny("carry")
    carry.layers.load_state_dict(fcn.layers.state_dict())
    carry.input_bn.load_state_dict(fcn.input_bn.state_dict())
    feats = {}
    fcn.head.register_forward_hook(lambda m, i, o: feats.__setitem__("fcn", i[0]))
    carry.head.register_forward_hook(lambda m, i, o: feats.__setitem__("carry", i[0]))
    x = clips(batch=2)
    with torch.no_grad():
        fcn.eval()(x), carry.eval()(x)
    assert feats["carry"].shape == (2, 27)
    assert torch.allclose(feats["carry"][:, -4:], feats["fcn"])


def test_dense_convs_read_every_carried_channel():
    model = tiny("dense")
    x = clips(batch=2)
    model.train()
    F.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    # the last conv's weights on the input's own carried channel (channel 0) get a gradient
    assert model.layers[4][0].weight.grad[:, 0].abs().sum() > 0
