"""NNET1, NNET2 and MixNet (mrnet.train.models.nnet): sizes pinned to the spec, shapes, the MFCC
z-score, the two output modes, refusals, learning.

Full-size models are built on the meta device; everything that runs uses tiny widths on the real
2^18-sample window, so the lengths are the paper's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler

from mrnet.core.errors import UserError
from mrnet.train.models import ModelInput, count_parameters, create_model
from mrnet.train.models.nnet import (
    Conv1dTrunk,
    Conv2dTrunk,
    MixNet,
    MixNetConfig,
    NNet1,
    NNet1Config,
    NNet2,
    NNet2Config,
    standardize,
)

# The spec's figures for FMA small's 8 genres.
COUNTS = {"nnet1": 2_461_832, "nnet2": 1_876_040, "mixnet": 3_607_496}
TINY = dict(num_classes=3, widths_1d=(4, 4, 4, 8), width_2d=8, hidden=(16, 8))
MODELS = {
    "nnet1": (NNet1, NNet1Config, 1024),
    "nnet2": (NNet2, NNet2Config, 20),
    "mixnet": (MixNet, MixNetConfig, 1044),
}


def tiny(name: str, **kw):
    cls, config, dim = MODELS[name]
    torch.manual_seed(0)
    return cls(config(**{**TINY, "in_dim": dim, **kw}))


def windows(dim: int, batch: int = 4, seed: int = 1) -> torch.Tensor:
    """(B, 1, 1, 256, dim): waveform samples in [-1, 1] and/or MFCC-like values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 1, 256, dim, generator=g) * 2 - 1
    x[..., 1024:] = torch.randn(batch, 1, 1, 256, dim - 1024, generator=g) * 30 + 5 if dim > 1024 else x[..., 1024:]
    return x if dim != 20 else torch.randn(batch, 1, 1, 256, 20, generator=g) * 30 + 5


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", COUNTS)
def test_size_matches_the_spec(name):
    cls, config, dim = MODELS[name]
    with torch.device("meta"):
        model = cls(config(num_classes=8, in_dim=dim))
    assert count_parameters(model) == COUNTS[name]


def test_pieces_match_the_spec():
    with torch.device("meta"):
        mix = MixNet(MixNetConfig(num_classes=8))
        assert count_parameters(Conv1dTrunk()) == 1_846_080
        assert count_parameters(Conv2dTrunk()) == 547_072
    assert count_parameters(mix) - 1_846_080 - 547_072 == 1_214_344  # the classifier


# ----------------------------------------------------------------------------- shapes


def test_nnet1_lengths_through_the_trunk():
    model = tiny("nnet1").eval()
    seen = []
    for m in model.conv1d.layers:
        if isinstance(m, (torch.nn.Conv1d, torch.nn.MaxPool1d)):
            m.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    with torch.no_grad():
        assert model(windows(1024)).shape == (4, 3)
    assert seen == [8193, 2048, 1025, 512, 257, 128, 65]


def test_nnet2_shapes_through_the_trunk():
    model = tiny("nnet2").eval()
    seen = []
    for m in (model.conv2d.c1, model.conv2d.c2, model.conv2d.c3):
        m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
    with torch.no_grad():
        assert model(windows(20)).shape == (4, 3)
    assert seen == [(8, 253, 1), (8, 254, 1), (8, 253, 1)]


def test_every_model_takes_exactly_256_frames_of_its_profile():
    for name, (_, _, dim) in MODELS.items():
        model = tiny(name)
        with pytest.raises(
            ValueError, match=rf"\(B, 1, 1, 256, {dim}\): windows of exactly 256 frames.*got \(2, 1, 1, 255, {dim}\)"
        ):
            model(torch.randn(2, 1, 1, 255, dim))
        with pytest.raises(ValueError, match=r"got \(2, 1, 1, 256, 128\)"):
            model(torch.randn(2, 1, 1, 256, 128))


def test_a_store_of_another_kind_is_refused_with_the_profile():
    mel = ModelInput(feature="mel128", channels=1, num_layers=1, dim=128, frame_rate=86.13, num_classes=8)
    for name, profile in (
        ("nnet1", "wave"),
        ("nnet2", "mfcc-window"),
        ("mixnet", "wave\\+mfcc-window"),
    ):  # the authors' MFCC first
        with pytest.raises(UserError, match=rf"--features {profile}\);.*'mel128' frames.*dim=128"):
            create_model(name, mel)
    stereo = ModelInput(feature="wave", channels=2, num_layers=1, dim=1024, frame_rate=43.07, num_classes=8)
    with pytest.raises(UserError, match="channels=2"):
        create_model("nnet1", stereo)


# ----------------------------------------------------------------------------- what each reads


def test_nnet1_and_nnet2_read_their_part_of_a_wave_mfcc_store():
    both = windows(1044)
    other = both.clone()
    one, two = tiny("nnet1", in_dim=1044).eval(), tiny("nnet2", in_dim=1044).eval()
    with torch.no_grad():
        other[..., 1024:] += 3.0 * torch.randn_like(other[..., 1024:])  # new MFCC, same waveform
        assert torch.equal(one(both), one(other))
        assert torch.equal(one(both), tiny("nnet1").eval()(both[..., :1024]))
        assert not torch.allclose(two(both), two(other))
        assert torch.allclose(two(both), tiny("nnet2").eval()(both[..., 1024:]), atol=1e-6)


def test_mixnet_sees_the_raw_waveform_and_the_standardised_mfcc():
    model = tiny("mixnet").eval()
    x = windows(1044)
    louder, shifted = x.clone(), x.clone()
    louder[..., :1024] *= 0.5  # the waveform is not standardised (the released code zeroed it)
    shifted[..., 1024:] = shifted[..., 1024:] * 3 + 7  # the MFCC are, per clip and coefficient
    with torch.no_grad():
        assert not torch.allclose(model(x), model(louder))
        assert torch.allclose(model(x), model(shifted), atol=1e-5)


def test_standardize_is_scikit_learns_standard_scaler_per_clip():
    mfcc = torch.randn(3, 1, 256, 20, dtype=torch.float32) * 40 + 10
    mfcc[1, 0, :, 4] = -100.0  # a constant coefficient (silence) is centred, not divided by zero
    z = standardize(mfcc)
    for b in range(3):
        ref = StandardScaler().fit_transform(mfcc[b, 0].double().numpy())
        np.testing.assert_allclose(z[b, 0].numpy(), ref, atol=1e-5)
    assert torch.equal(z[1, 0, :, 4], torch.zeros(256))


def test_softmax_output_is_the_faithful_double_softmax():
    x = windows(20)
    clean, faithful = tiny("nnet2").eval(), tiny("nnet2", softmax_output=True).eval()
    with torch.no_grad():
        logits, probs = clean(x), faithful(x)
    assert torch.allclose(probs, logits.softmax(1)) and torch.allclose(probs.sum(1), torch.ones(4))
    assert torch.equal(probs.argmax(1), logits.argmax(1))
    # the loop's cross-entropy on probabilities has a floor: log(1 + (K - 1) / e) even for a perfect prediction
    perfect = torch.eye(3)[[0, 1, 2, 0]]
    assert F.cross_entropy(perfect, torch.tensor([0, 1, 2, 0])).item() == pytest.approx(np.log(1 + 2 / np.e))
    assert create_model("nnet1", ModelInput("wave", 1, 1, 1024, 43.07, 8), softmax_output=True).cfg.softmax_output


def test_xavier_init_and_zero_biases():
    model = tiny("mixnet", hidden=(64, 32))
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
            fan_in, fan_out = m.weight.shape[1] * m.weight[0, 0].numel(), m.weight.shape[0] * m.weight[0, 0].numel()
            assert m.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5 and m.bias.eq(0).all()
    assert [m.p for m in model.head if isinstance(m, torch.nn.Dropout)] == [0.1, 0.1]
    assert not any(isinstance(m, torch.nn.Dropout) for m in tiny("nnet1").modules())
