"""MRNet (mrnet.train.models.mrnet): parameter counts pinned to the authors' model, shapes, ablations, learning.

Full-size models are built on the meta device (no memory, no compute); everything that runs uses a
tiny config (C = 16, 2 layers of width 8) on one CPU thread, so the file takes a few seconds.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mrnet.train.models import count_parameters
from mrnet.train.models.mrnet import ROUTES, MRNet, MRNetConfig

# The three store layouts of the spec's size table: (in_channels, num_layers, in_dim).
INPUTS = {
    "wavlm-stereo": dict(in_channels=2, num_layers=13, in_dim=768),
    "wavlm-mono": dict(in_channels=1, num_layers=13, in_dim=768),
    "mel": dict(in_channels=1, num_layers=1, in_dim=48),
}
# The sizes of the authors' model (docs/model.md, "Parameter counts"; C = 512, embedding 128, without the class head).
# "Without the class head" = every parameter except Linear(128 -> classes) and its BN(classes):
# the layer weights (13 or 1), the route weights W (7) and all BatchNorm affine weights and biases
# ARE counted (BN running statistics are buffers, not parameters). Only this combination gives all three.
AUTHORS_COUNTS = {"wavlm-stereo": 22_716_052, "wavlm-mono": 20_749_972, "mel": 18_906_760}
# Measured here: the paper variant has no global-context conv G (3C -> C) and its mid convs read C,
# not 2C, channels: 787,968 + 3 x 262,144 = 1,574,400 fewer parameters than the authors' at C = 512.
PAPER_COUNTS = {"wavlm-stereo": 21_141_652, "wavlm-mono": 19_175_572, "mel": 17_332_360}

TINY = dict(in_dim=8, num_layers=2, width=16, embed_dim=8, num_classes=3)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are all overhead; two threads on two busy cores are ten times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def meta_model(**kw) -> MRNet:
    with torch.device("meta"):
        return MRNet(MRNetConfig(**kw))


def tiny(**kw) -> MRNet:
    torch.manual_seed(0)
    return MRNet(MRNetConfig(**{**TINY, **kw}))


def features(cfg: MRNetConfig, batch: int = 4, frames: int = 20, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.in_channels, cfg.num_layers, frames, cfg.in_dim, generator=g)


def numel(model: MRNet, prefix: str) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith(prefix))


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", INPUTS)
def test_authors_variant_matches_published_size(name):
    model = meta_model(variant="authors", **INPUTS[name])
    assert count_parameters(model, head=False) == AUTHORS_COUNTS[name]


@pytest.mark.parametrize("name", INPUTS)
def test_paper_variant_size_as_measured(name):
    model = meta_model(variant="paper", **INPUTS[name])
    assert count_parameters(model, head=False) == PAPER_COUNTS[name]
    assert AUTHORS_COUNTS[name] - PAPER_COUNTS[name] == 1_574_400


def test_largest_pieces_match_spec():
    model = meta_model(variant="authors", **INPUTS["wavlm-stereo"])
    assert numel(model, "stem.0.") == 1536 * 512 * 5 + 512 == 3_932_672  # "stem conv 3.93 M"
    assert numel(model, "blocks.") == 3 * 4_821_024 == 14_463_072  # "three MRBlocks 14.46 M"
    assert numel(model, "embedding.1.") == 7 * 2 * 512 * 128 + 128 == 917_632  # "embedding Linear 0.92 M"
    assert model.blocks[0].width == 192  # W = floor(3C / 8)
    assert model.blocks[0].se[0].squeeze.out_channels == 32  # C / 16
    assert model.pool["L1"].attention[0].out_channels == 32


def test_count_parameters_head_flag():
    model = meta_model(variant="authors", num_classes=10, **INPUTS["mel"])
    assert count_parameters(model) - count_parameters(model, head=False) == 128 * 10 + 10 + 2 * 10
    with pytest.raises(ValueError, match="no `head`"):
        count_parameters(torch.nn.Linear(2, 2), head=False)


# ----------------------------------------------------------------------------- shapes and gradients


@pytest.mark.parametrize("variant", ["paper", "authors"])
def test_forward_backward_shapes(variant):
    model = tiny(variant=variant, in_channels=2)
    x = features(model.cfg, batch=3, frames=21)
    assert model.embed(x).shape == (3, 8)
    logits = model(x)
    assert logits.shape == (3, 3)
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []  # no dead parameters
    assert model.layer_weights.grad.abs().sum() > 0 and model.route_weights.grad.abs().sum() > 0


def test_weights_start_at_one():
    model = tiny()
    assert torch.equal(model.layer_weights.data, torch.ones(2))
    assert torch.equal(model.route_weights.data, torch.ones(7))
    assert model.route_names == ROUTES


@pytest.mark.parametrize("variant", ["paper", "authors"])
@pytest.mark.parametrize("frames", [1, 2, 7, 37])
def test_any_length_eval_batch_one(variant, frames):
    model = tiny(variant=variant).eval()
    with torch.no_grad():
        out = model(features(model.cfg, batch=1, frames=frames))
    assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_the_shortest_crop_trains():
    """Two frames, the shortest crop training accepts (one frame normalises every sample to the same
    zeros, and BatchNorm on identical samples multiplies gradients by 1/sqrt(eps) per layer until they
    overflow): a finite loss and finite gradients, and one optimizer step lowers the loss."""
    model = tiny(dropout=0.0)
    x, y = features(model.cfg, batch=4, frames=2), torch.tensor([0, 1, 2, 0])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    assert model.head[1].bias.grad.abs().sum() > 0  # the error reaches the class head
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert F.cross_entropy(model(x), y) < loss


def test_float16_features_accepted():
    model = tiny().eval()
    x = features(model.cfg)
    assert torch.allclose(model(x.half()), model(x.half().float()))


def test_wrong_input_shape_is_explained():
    model = tiny()
    with pytest.raises(ValueError, match=r"num_layers=2.*got \(4, 1, 3, 20, 8\)"):
        model(torch.randn(4, 1, 3, 20, 8))
    with pytest.raises(ValueError, match="in_dim=8"):
        model(torch.randn(4, 1, 2, 20))


def test_only_layer_weight_ratios_matter():
    """The instance norm after the layer sum removes the weights' common scale (docs/model.md)."""
    model = tiny()
    F.cross_entropy(model(features(model.cfg)), torch.tensor([0, 1, 2, 0])).backward()
    g = model.layer_weights.grad
    assert g.abs().sum() > 0 and abs(g.sum()) < 1e-3 * g.abs().sum()


def test_layer_weight_zero_ignores_that_layer():
    model = tiny().eval()
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([1.0, 0.0]))
        x = features(model.cfg)
        y = x.clone()
        y[:, :, 1] = 100 * torch.randn_like(y[:, :, 1])
        assert torch.allclose(model(x), model(y), atol=1e-5)


# ----------------------------------------------------------------------------- route ablation


@pytest.mark.parametrize("variant", ["paper", "authors"])
@pytest.mark.parametrize("route", ROUTES)
def test_ablation_removes_exactly_that_route(variant, route):
    full, ablated = tiny(variant=variant), tiny(variant=variant, drop_routes=(route,))
    assert ablated.route_names == tuple(r for r in ROUTES if r != route)
    assert ablated.route_weights.shape == (6,)
    full_names = {n for n, _ in full.named_parameters()}
    kept_names = {n for n, _ in ablated.named_parameters()}
    gone = {
        n.split(".")[0] + "." + n.split(".")[1] if n.startswith(("pool.", "mid.")) else n.split(".")[0]
        for n in full_names - kept_names
    }
    expected = {f"pool.{route}"} | ({f"mid.{route}"} if route.startswith("M") else set())
    if route == "H" and variant == "authors":
        expected.add("high")  # H's conv feeds only H here; in the paper variant it also feeds M1..M3
    assert gone == expected
    assert kept_names <= full_names
    # the classifier narrows by one pooled route (2C): BN(2C . R) and the Linear's input
    C, E = 16, 8
    assert ablated.embedding[1].in_features == 6 * 2 * C
    removed = sum(p.numel() for n, p in full.named_parameters() if n not in kept_names)
    assert count_parameters(full) - count_parameters(ablated) == removed + 1 + 2 * (2 * C) + 2 * C * E
    # it still trains, and every parameter left gets a gradient
    x = features(ablated.cfg, batch=3)
    F.cross_entropy(ablated(x), torch.tensor([0, 1, 2])).backward()
    assert all(p.grad is not None for p in ablated.parameters())


def test_ablating_all_mid_routes_drops_their_shared_convs():
    mids = ("M1", "M2", "M3")
    assert tiny(variant="authors", drop_routes=mids).context is None
    assert tiny(variant="authors").context is not None
    assert tiny(variant="paper").context is None
    assert tiny(variant="paper", drop_routes=("H",)).high is not None  # M_i still needs H
    assert tiny(variant="paper", drop_routes=("H",) + mids).high is None


# ----------------------------------------------------------------------------- config


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="'paper', 'authors'"):
        MRNetConfig(in_dim=8, variant="mlfa")
    with pytest.raises(ValueError, match="L1, L2, L3, H, M1, M2, M3"):
        MRNetConfig(in_dim=8, drop_routes=("X",))
    with pytest.raises(ValueError, match="keep at least one"):
        MRNetConfig(in_dim=8, drop_routes=ROUTES)
    with pytest.raises(ValueError, match="odd"):
        MRNetConfig(in_dim=8, kernel=4)
    with pytest.raises(ValueError, match="three"):
        MRNetConfig(in_dim=8, dilations=(2, 3))


def test_config_is_frozen_hashable_and_takes_lists():
    cfg = MRNetConfig(in_dim=8, drop_routes=["H"], dilations=[2, 3, 4])  # as read back from JSON
    assert cfg.drop_routes == ("H",) and cfg.dilations == (2, 3, 4)
    assert cfg == MRNetConfig(**dataclasses.asdict(cfg)) and hash(cfg) == hash(MRNetConfig(**dataclasses.asdict(cfg)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.width = 8  # type: ignore[misc]
    assert MRNetConfig(in_dim=768, in_channels=2).input_width == 1536


# ----------------------------------------------------------------------------- behaviour


def test_eval_is_deterministic_and_per_track():
    model = tiny().eval()
    x = features(model.cfg, batch=4, frames=30)
    with torch.no_grad():
        a, b = model(x), model(x)
        alone = model(x[2:3])
    assert torch.equal(a, b)
    assert torch.allclose(a[2:3], alone, atol=1e-5)  # batch-independent: eval runs one track at a time
