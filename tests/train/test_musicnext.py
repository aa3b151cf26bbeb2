"""MusicNeXt and MusicNeXt-S (mrnet.train.models.musicnext): sizes pinned to the spec, shapes, the
L-softmax head and its lambda schedule, refusals, learning.

Full-size models are built on the meta device (no memory, no compute); everything that runs uses
tiny widths on the real 128 x 256 fragment, so the spatial shapes are the paper's.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.train.models import ModelInput, count_parameters, create_model
from mrnet.train.models.musicnext import (
    Block,
    LSoftmaxLinear,
    MusicNeXt,
    MusicNeXtConfig,
    MusicNeXtS,
)

# The spec's figures (ConvNeXt-T widths, no bias on the L-softmax FC): GTZAN, ISMIR2004, Extended Ballroom.
COUNTS = {10: 27_811_296, 6: 27_808_224, 9: 27_810_528}
# Its per-layer table: stem, S1, D1, S2, D2, S3, D3, S4, then the final LayerNorm.
PIECES = {
    "stem.": 1_632,
    "stages.0.": 237_312,
    "downsample.0.": 74_112,
    "stages.1.": 916_992,
    "downsample.1.": 295_680,
    "stages.2.": 10_810_368,
    "downsample.2.": 1_181_184,
    "stages.3.": 14_284_800,
    "norm.": 1_536,
}
TINY = dict(depths=(1, 1, 1, 1), dims=(4, 8, 8, 8))
MEL128 = ModelInput(feature="mel128", channels=1, num_layers=1, dim=128, frame_rate=86.13, num_classes=10)


def meta(cls=MusicNeXt, **kw):
    with torch.device("meta"):
        return cls(MusicNeXtConfig(**kw))


def tiny(cls=MusicNeXt, **kw):
    torch.manual_seed(0)
    return cls(MusicNeXtConfig(**{"num_classes": 3, **TINY, **kw}))


def fragments(batch: int = 4, frames: int = 256, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, 1, frames, 128, generator=torch.Generator().manual_seed(seed))


def numel(model, prefix: str) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("classes", sorted(COUNTS))
def test_lsoftmax_model_matches_the_spec_size(classes):
    model = meta(num_classes=classes)
    assert count_parameters(model) == COUNTS[classes]
    assert count_parameters(model, head=False) == COUNTS[classes] - 768 * classes  # no bias


def test_every_piece_matches_the_spec_table():
    model = meta(num_classes=10)
    for prefix, count in PIECES.items():
        assert numel(model, prefix) == count, prefix
    assert sum(PIECES.values()) + 768 * 10 == COUNTS[10]
    assert sum(p.numel() for p in Block(96).parameters()) == 8 * 96**2 + 56 * 96


def test_softmax_ablation_adds_only_the_bias():
    for classes in COUNTS:
        assert count_parameters(meta(MusicNeXtS, num_classes=classes)) == COUNTS[classes] + classes


# ----------------------------------------------------------------------------- shapes


def test_fragment_shapes_through_the_stages():
    model = tiny().eval()
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:]))) for m in (model.stem, *model.stages)
    ]
    with torch.no_grad():
        out = model(fragments(batch=2))
    for h in hooks:
        h.remove()
    # (B,1,1,256,128) -> (B,1,128,256): mel is height, time is width
    assert seen == [(4, 32, 64), (4, 32, 64), (8, 16, 32), (8, 8, 16), (8, 4, 8)]
    assert out.shape == (2, 3)


def test_mel_is_height_and_time_is_width():
    """Time reversal (the recipe's horizontal flip) is a width flip of the image the trunk sees."""
    model = tiny().eval()
    x = fragments(batch=1)
    seen = []
    model.stem.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        model(x)
    assert torch.equal(seen[0][0, 0], x[0, 0, 0].T)  # (mel, time)


@pytest.mark.parametrize("frames", [32, 100, 256, 2560])
def test_any_length_from_32_frames(frames):
    with torch.no_grad():
        assert tiny().eval()(fragments(batch=1, frames=frames)).shape == (1, 3)


def test_wrong_layout_is_refused_with_the_profile():
    with pytest.raises(UserError, match=r"mel128.*dim=48"):
        create_model(
            "musicnext", ModelInput(feature="mel", channels=1, num_layers=1, dim=48, frame_rate=62.5, num_classes=4)
        )
    with pytest.raises(UserError, match=r"mel128.*channels=2"):
        create_model(
            "musicnext-softmax",
            ModelInput(feature="mel128", channels=2, num_layers=1, dim=128, frame_rate=86.13, num_classes=4),
        )
    model = tiny()
    with pytest.raises(ValueError, match=r"T>=32, 128.*256-frame fragments.*got \(2, 1, 1, 16, 128\)"):
        model(fragments(batch=2, frames=16))
    with pytest.raises(ValueError, match=r"got \(2, 1, 1, 256, 96\)"):
        model(torch.randn(2, 1, 1, 256, 96))


def test_the_registry_builds_both_heads():
    with torch.device("meta"):
        a, b = create_model("musicnext", MEL128, margin=2), create_model("musicnext-softmax", MEL128)
    assert isinstance(a, MusicNeXt) and a.head.margin == 2 and hasattr(a, "training_logits")
    assert type(b) is MusicNeXtS and not hasattr(b, "training_logits")
    with pytest.raises(UserError, match="no option"):
        create_model("musicnext-softmax", MEL128, margin=2)


def test_initialisation():
    model = tiny(dims=(16, 32, 64, 768))
    assert model.stages[0][0].gamma.eq(1e-6).all()
    assert model.stages[3][0].pwconv1.bias.eq(0).all() and model.stem.bias.eq(0).all()
    w = model.stages[3][0].pwconv1.weight
    assert abs(w.std().item() - 0.02) < 0.002  # truncated normal, std 0.02
    head = model.head.weight  # Kaiming normal, fan-in 768
    assert abs(head.std().item() - math.sqrt(2 / 768)) < 0.2 * math.sqrt(2 / 768)


# ----------------------------------------------------------------------------- L-softmax


def head_with(weight: torch.Tensor, margin: int = 4, **kw) -> LSoftmaxLinear:
    head = LSoftmaxLinear(weight.shape[1], weight.shape[0], margin, **kw)
    with torch.no_grad():
        head.weight.copy_(weight)
    return head


@pytest.mark.parametrize(
    "degrees, psi",
    [
        (30, math.cos(math.radians(120))),
        (60, -math.cos(math.radians(240)) - 2),
        (0, 1.0),
        (100, math.cos(math.radians(400)) - 4),
    ],
)
def test_margin_is_psi_of_the_angle(degrees, psi):
    """m = 4: psi(theta) = (-1)^k cos(4 theta) - 2k on [k pi/4, (k+1) pi/4]; lambda 0 (base 0)."""
    t = math.radians(degrees)
    head = head_with(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), base=0.0)
    x = torch.tensor([[3 * math.cos(t), 3 * math.sin(t)]])
    out = head.margin_logits(x, torch.tensor([0]))
    assert out[0, 0].item() == pytest.approx(2 * 3 * psi, abs=1e-4)
    assert out[0, 1].item() == pytest.approx(3 * math.sin(t), abs=1e-5)  # other classes keep W x


def test_training_logits_equal_forward_as_lambda_grows():
    model = tiny(lambda_base=1e12)
    x, y = fragments(), torch.tensor([0, 1, 2, 0])
    assert torch.allclose(model.training_logits(x, y), model(x), rtol=1e-5, atol=1e-6)


def test_the_margin_lowers_only_the_target_logit():
    model = tiny(lambda_base=0.0)
    x, y = fragments(), torch.tensor([0, 1, 2, 0])
    plain, margin = model(x), model.training_logits(x, y)
    target = F.one_hot(y, 3).bool()
    assert (margin[target] < plain[target]).all()
    assert torch.equal(margin[~target], plain[~target].float())
    F.cross_entropy(margin, y).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_lambda_schedule_counts_optimiser_steps():
    head = LSoftmaxLinear(4, 2, margin=4)
    assert head.lam().item() == pytest.approx(1000.0)  # before any step
    x, y = torch.randn(3, 4), torch.tensor([0, 1, 0])
    for _ in range(3):
        head.margin_logits(x, y)
    assert int(head.step) == 3
    head.step.fill_(800)  # 5 GTZAN epochs of 160 steps: lambda ~ 68 (the spec's figure)
    assert head.lam().item() == pytest.approx(1000 * (1 + 1e-4 * 800) ** -35, rel=1e-5)
    assert 60 < head.lam().item() < 70
    head.step.fill_(4000)
    assert head.lam().item() < 1.0
    assert LSoftmaxLinear(4, 2, 4, lambda_min=5.0, base=1.0).lam().item() == 5.0


def test_a_resumed_run_continues_the_schedule_exactly():
    a = tiny()
    opt = torch.optim.Adam(a.parameters(), lr=1e-3)
    x, y = fragments(), torch.tensor([0, 1, 2, 0])
    for _ in range(3):
        loss = F.cross_entropy(a.training_logits(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = a.state_dict()
    assert int(state["head.step"]) == 3
    b = MusicNeXt(a.cfg)
    b.load_state_dict(state)
    assert int(b.head.step) == 3 and torch.equal(b.head.lam(), a.head.lam())
    assert torch.equal(a.training_logits(x, y), b.training_logits(x, y))
    assert int(a.head.step) == int(b.head.step) == 4
