"""MRNet: a multi-route Res2Net CNN over stored frame features, for music genre classification.

The whole model is in this file, read top to bottom: the small blocks (conv -> ReLU -> BN, the
squeeze-excitation gate, the MRBlock, attentive statistics pooling), then the frozen config, then
``MRNet`` itself. Sources: the paper (Heo et al., J. Acoust. Soc. Korea 44(5):516-523, 2025, sections 3.1-3.3, Table 1)
and the authors' released code (github.com/Jungwoo4021/MRNet, class ``MLFANet``); docs/model.md
states the architecture layer by layer and where the two differ.

Input is what the feature store holds per track, batched: ``(B, channels, layers, T, dim)``.

    layers --(layer_weights, weighted sum)--> (B, channels*dim, T)
      -> InstanceNorm -> Dropout -> Conv(k=5) -> ReLU -> BN                    stem, C channels (InstanceNorm: --normalize instance)
      -> 3 x [Dropout -> MRBlock(dilation 2, 3, 4)] -> o1, o2, o3 per block   next input: x + o2
      -> routes L1..L3 = o1;  H = conv(cat o2);  M1..M3 = conv(o3 with H)     seven (B, C, T) maps
      -> ASP per route -> x route_weights -> BN -> Linear -> BN               embedding (B, 128)
      -> Linear -> BN                                                         logits (B, classes)

Two variants differ only in the mid routes: ``"paper"`` (Eq. 4, ``M_i = conv(o3_i + H)``) and
``"authors"`` (the released code: a global context ``G = conv(cat o2)``, ``M_i = conv(cat(o3_i, G))``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrnet.train.models.registry import ModelInput, register_model

ROUTES = ("L1", "L2", "L3", "H", "M1", "M2", "M3")  # the authors' stack order
VARIANTS = ("paper", "authors")


# ----------------------------------------------------------------------------- blocks


class ConvReLUBN(nn.Sequential):
    """Conv1d -> ReLU -> BatchNorm1d, the authors' order everywhere (activation before norm).

    Padding keeps the length: ``(kernel // 2) * dilation`` (kernel must be odd).

    >>> ConvReLUBN(4, 6, kernel=3, dilation=2)(torch.randn(2, 4, 9)).shape
    torch.Size([2, 6, 9])
    """

    def __init__(self, c_in: int, c_out: int, *, kernel: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=(kernel // 2) * dilation),
            nn.ReLU(),
            nn.BatchNorm1d(c_out),
        )


class SEGate(nn.Module):
    """Squeeze-excitation: mean over time -> 1x1 conv C -> C/r -> ReLU -> 1x1 conv -> sigmoid -> scale.

    >>> SEGate(16, 2)(torch.randn(2, 16, 5)).shape
    torch.Size([2, 16, 5])
    """

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.squeeze = nn.Conv1d(channels, bottleneck, 1)
        self.excite = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=2, keepdim=True)  # (B, C, 1)
        s = torch.sigmoid(self.excite(F.relu(self.squeeze(s))))  # (B, C, 1)
        return x * s


class MRBlock(nn.Module):
    """Multi-route Res2Block: a dilated Res2Net bottleneck C -> 3C whose thirds get their own SE gate.

    Returns the three thirds ``(o1, o2, o3)``, each ``(B, C, T)`` (paper Fig. 2; docs/model.md, "Layer by layer").

    Args:
        channels: C, the block's input width; the output is 3C, split in three.
        dilation: dilation of the Res2Net group convs.
        scale: number of Res2Net groups (group width ``W = floor(3C / scale)``).
        kernel: kernel of the group convs.
        se_bottleneck: SE reduction, C -> C // se_bottleneck.

    >>> o1, o2, o3 = MRBlock(16, dilation=2)(torch.randn(2, 16, 7))
    >>> o1.shape, o2.shape, o3.shape
    (torch.Size([2, 16, 7]), torch.Size([2, 16, 7]), torch.Size([2, 16, 7]))
    """

    def __init__(self, channels: int, *, dilation: int, scale: int = 8, kernel: int = 3, se_bottleneck: int = 16):
        super().__init__()
        out = 3 * channels
        self.channels = channels
        self.width = math.floor(out / scale)  # W; 192 for C = 512
        self.expand = ConvReLUBN(channels, self.width * scale)
        self.groups = nn.ModuleList(
            ConvReLUBN(self.width, self.width, kernel=kernel, dilation=dilation) for _ in range(scale - 1)
        )
        self.project = ConvReLUBN(self.width * scale, out)
        self.se = nn.ModuleList(SEGate(channels, channels // se_bottleneck) for _ in range(3))
        self.residual = nn.Conv1d(channels, out, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # 1x1 expand, split into `scale` groups of W
        y = self.expand(x)  # (B, scale*W, T)
        groups = y.split(self.width, dim=1)  # scale x (B, W, T)
        # Res2Net hierarchy: each group conv sees the previous output plus its own group; the last passes
        outs, sp = [], None
        for g, conv in zip(groups, self.groups):
            sp = conv(g if sp is None else sp + g)  # (B, W, T)
            outs.append(sp)
        outs.append(groups[-1])
        y = self.project(torch.cat(outs, dim=1))  # (B, 3C, T)
        # one SE gate per third, then the residual on the block input
        thirds = y.split(self.channels, dim=1)  # 3 x (B, C, T)
        y = torch.cat([se(t) for se, t in zip(self.se, thirds)], dim=1)  # (B, 3C, T)
        y = y + self.residual(x)  # (B, 3C, T)
        o1, o2, o3 = y.split(self.channels, dim=1)  # 3 x (B, C, T)
        return o1, o2, o3


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling: per-channel softmax attention over time, weighted mean and std.

    Attention is 1x1 conv C -> C/r -> ReLU -> BN -> Tanh -> 1x1 conv -> softmax over time (Table 1);
    std = sqrt(clamp(E[x^2] - mean^2, 1e-4)). Output ``(B, 2C)``: mean then std.

    >>> AttentiveStatsPool(16, 2)(torch.randn(2, 16, 5)).shape
    torch.Size([2, 32])
    """

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, bottleneck, 1),
            nn.ReLU(),
            nn.BatchNorm1d(bottleneck),
            nn.Tanh(),
            nn.Conv1d(bottleneck, channels, 1),
            nn.Softmax(dim=2),
        )

    def forward(self, x: Tensor) -> Tensor:
        a = self.attention(x)  # (B, C, T), sums to 1 over T
        mean = (x * a).sum(dim=2)  # (B, C)
        std = ((x * x * a).sum(dim=2) - mean * mean).clamp(min=1e-4).sqrt()  # (B, C)
        return torch.cat((mean, std), dim=1)  # (B, 2C)


def instance_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each (sample, channel) row over time, no affine: ``nn.InstanceNorm1d`` that accepts T = 1.

    ``InstanceNorm1d`` refuses a single frame; the formula gives zeros there, and so does this.

    >>> instance_norm(torch.randn(2, 3, 1)).abs().max().item()
    0.0
    """
    return F.layer_norm(x, x.shape[-1:], eps=eps)  # over the last axis (T) of (B, C, T)


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class MRNetConfig:
    """Everything that fixes MRNet's shape. Defaults are the paper's (C = 512, embedding 128).

    ``in_channels``, ``num_layers`` and ``in_dim`` come from the store: its provenance's
    ``channels``, ``len(layers)`` and ``dim``. The stem sees ``in_channels * in_dim`` features per frame.

    >>> MRNetConfig(in_dim=768, in_channels=2).input_width
    1536
    >>> MRNetConfig(in_dim=48, variant="nope")
    Traceback (most recent call last):
    ...
    ValueError: variant 'nope' is not one of 'paper', 'authors'
    """

    in_dim: int  # feature width per audio channel: 768 (WavLM-base) or 48 (Mel)
    in_channels: int = 1  # audio channels in the store: 1 mono, 2 stereo
    num_layers: int = 13  # stored layers fed in (one learnable weight each)
    num_classes: int = 10
    width: int = 512  # C: the channels of every block (the store's audio channels are in_channels)
    embed_dim: int = 128
    variant: str = "paper"  # "paper" (Eq. 4: M_i = conv(o3_i + H)) | "authors" (global context G, concat)
    drop_routes: tuple[str, ...] = ()  # route ablation (paper Table 3), names from ROUTES
    scale: int = 8  # Res2Net scale
    kernel: int = 3
    dilations: tuple[int, ...] = (2, 3, 4)
    se_bottleneck: int = 16  # SE and ASP reduce C -> C // 16
    dropout: float = 0.5
    instance_norm: bool = True  # the stem's instance norm over time (the authors'); off for --normalize stored/none

    def __post_init__(self):
        # lists from JSON/YAML become tuples, so the config stays hashable and compares equal
        object.__setattr__(self, "drop_routes", tuple(self.drop_routes))
        object.__setattr__(self, "dilations", tuple(self.dilations))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is not one of {', '.join(map(repr, VARIANTS))}")
        unknown = [r for r in self.drop_routes if r not in ROUTES]
        if unknown:
            raise ValueError(f"drop_routes {unknown} not in the routes {', '.join(ROUTES)}")
        if not self.routes:
            raise ValueError(f"drop_routes drops every route ({', '.join(ROUTES)}); keep at least one")
        positive = ("in_dim", "in_channels", "num_layers", "num_classes", "width", "embed_dim", "kernel")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd to keep the length, got {self.kernel}")
        if len(self.dilations) != 3 or min(self.dilations) < 1:
            raise ValueError(f"dilations must be three positive ints (one per MRBlock), got {self.dilations}")
        if self.scale < 2 or 3 * self.width < self.scale:
            raise ValueError(f"scale must be in [2, 3*width], got {self.scale}")
        if not 1 <= self.se_bottleneck <= self.width:
            raise ValueError(f"se_bottleneck must be in [1, width={self.width}], got {self.se_bottleneck}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_input(cls, inputs: ModelInput, **options: Any) -> MRNetConfig:
        """The config for a store's frames: any feature kind, any number of stored layers."""
        return cls(
            in_dim=inputs.dim,
            in_channels=inputs.channels,
            num_layers=inputs.num_layers,
            num_classes=inputs.num_classes,
            **options,
        )

    @property
    def input_width(self) -> int:
        """Features per frame after the layer sum: ``in_channels * in_dim`` (1536 for stereo WavLM)."""
        return self.in_channels * self.in_dim

    @property
    def routes(self) -> tuple[str, ...]:
        """The kept routes, in stack order."""
        return tuple(r for r in ROUTES if r not in self.drop_routes)


# ----------------------------------------------------------------------------- model


@register_model(
    "mrnet",
    config=MRNetConfig,
    title="MRNet",
    preset="paper",
    options=("width", "embed_dim", "variant", "drop_routes", "dropout", "instance_norm"),
)  # every normalisation
class MRNet(nn.Module):
    """MRNet: stem, three MRBlocks, seven routes, attentive pooling, embedding and class head.

    ``embed`` gives the 128-d embedding, ``forward`` the logits (the head is Linear -> BN, as in the
    authors' cross-entropy module). Any T >= 1 works; BatchNorm needs B >= 2 in training mode only.

    Attributes:
        layer_weights: one scalar per stored layer, init 1, not normalised (which depths are used).
        route_weights: one scalar per kept route, init 1: the paper's ``W`` (Fig. 3).
        route_names: the kept routes in stack order; ``route_weights[i]`` scales ``route_names[i]``.

    >>> cfg = MRNetConfig(in_dim=8, num_layers=2, width=16, embed_dim=8, num_classes=3)
    >>> model = MRNet(cfg).eval()
    >>> x = torch.randn(2, 1, 2, 50, 8)  # (B, channels, layers, T, dim)
    >>> model.embed(x).shape, model(x).shape
    (torch.Size([2, 8]), torch.Size([2, 3]))
    >>> model.route_names
    ('L1', 'L2', 'L3', 'H', 'M1', 'M2', 'M3')

    The authors' model (C = 512) on stereo WavLM-base features has the 22,716,052 parameters they
    publish, the class head left out (the meta device builds it without allocating memory):

    >>> from mrnet.train.models.registry import count_parameters
    >>> with torch.device("meta"):
    ...     authors = MRNet(MRNetConfig(in_dim=768, in_channels=2, variant="authors"))
    >>> count_parameters(authors, head=False)
    22716052
    """

    def __init__(self, cfg: MRNetConfig):
        super().__init__()
        self.cfg = cfg
        self.route_names = cfg.routes
        C, keep = cfg.width, set(cfg.routes)
        mids = [m for m in ("M1", "M2", "M3") if m in keep]
        bottleneck = C // cfg.se_bottleneck

        self.layer_weights = nn.Parameter(torch.ones(cfg.num_layers))
        self.dropout = nn.Dropout(cfg.dropout)  # one module, used before the stem conv and every block
        self.stem = ConvReLUBN(cfg.input_width, C, kernel=5)
        self.blocks = nn.ModuleList(
            MRBlock(C, dilation=d, scale=cfg.scale, kernel=cfg.kernel, se_bottleneck=cfg.se_bottleneck)
            for d in cfg.dilations
        )
        # route convs, only those a kept route needs: H also feeds M in the paper variant, G only M
        needs_high = "H" in keep or (cfg.variant == "paper" and bool(mids))
        self.high = ConvReLUBN(3 * C, C) if needs_high else None  # H = conv(cat o2)
        self.context = ConvReLUBN(3 * C, C) if cfg.variant == "authors" and mids else None  # G
        mid_in = 2 * C if cfg.variant == "authors" else C
        self.mid = nn.ModuleDict({m: ConvReLUBN(mid_in, C) for m in mids})
        # classifier: one ASP per kept route, the W vector, then the embedding
        self.pool = nn.ModuleDict({r: AttentiveStatsPool(C, bottleneck) for r in self.route_names})
        self.route_weights = nn.Parameter(torch.ones(len(self.route_names)))
        pooled = len(self.route_names) * 2 * C
        self.embedding = nn.Sequential(
            nn.BatchNorm1d(pooled), nn.Linear(pooled, cfg.embed_dim), nn.BatchNorm1d(cfg.embed_dim)
        )
        self.head = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.num_classes), nn.BatchNorm1d(cfg.num_classes))

    def embed(self, x: Tensor) -> Tensor:
        """``(B, in_channels, num_layers, T, in_dim)`` features -> ``(B, embed_dim)`` embedding."""
        self._check_input(x)
        B, A, N, T, D = x.shape
        x = x.to(self.layer_weights.dtype)  # stores hold float16
        # layer weights: weighted sum over the stored layers
        x = torch.einsum("bantd,n->batd", x, self.layer_weights)  # (B, A, T, D)
        x = x.transpose(2, 3).reshape(B, A * D, T)  # (B, A*D, T), channel-major: channel a is x[:, a*D:(a+1)*D]
        # stem
        if self.cfg.instance_norm:
            x = instance_norm(x)
        x = self.stem(self.dropout(x))  # (B, C, T)
        # MRBlocks: block i reads x + o2 of block i-1 (Eq. 1); dropout on the block input only
        o1s: list[Tensor] = []
        o2s: list[Tensor] = []
        o3s: list[Tensor] = []
        for block in self.blocks:
            o1, o2, o3 = block(self.dropout(x))  # 3 x (B, C, T)
            x = x + o2
            o1s.append(o1)
            o2s.append(o2)
            o3s.append(o3)
        # routes
        routes = self._routes(o1s, o2s, o3s)  # name -> (B, C, T)
        # pooling, scaled by W
        pooled = torch.stack([self.pool[r](routes[r]) for r in self.route_names], dim=1)  # (B, R, 2C)
        pooled = pooled * self.route_weights.view(1, -1, 1)  # (B, R, 2C)
        x = pooled.flatten(1)  # (B, R*2C)
        # embedding
        return self.embedding(x)  # (B, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, num_layers, T, in_dim)`` features -> ``(B, num_classes)`` logits."""
        return self.head(self.embed(x))

    def _routes(self, o1s: list[Tensor], o2s: list[Tensor], o3s: list[Tensor]) -> dict[str, Tensor]:
        """The kept routes from the blocks' outputs: L_i = o1_i, H = conv(Xconv), M_i per variant."""
        routes = {f"L{i + 1}": o for i, o in enumerate(o1s)}
        xconv = torch.cat(o2s, dim=1)  # (B, 3C, T), Eq. 2
        if self.high is not None:
            routes["H"] = self.high(xconv)  # (B, C, T), Eq. 3
        if self.context is not None:
            g = self.context(xconv)  # (B, C, T), the authors' global context G
        for m, conv in self.mid.items():
            o3 = o3s[int(m[1]) - 1]
            if self.cfg.variant == "paper":
                routes[m] = conv(o3 + routes["H"])  # (B, C, T), Eq. 4
            else:
                routes[m] = conv(torch.cat((o3, g), dim=1))  # (B, 2C, T) -> (B, C, T)
        return routes

    def _check_input(self, x: Tensor) -> None:
        cfg = self.cfg
        want = (cfg.in_channels, cfg.num_layers, cfg.in_dim)
        if x.dim() != 5 or tuple(x.shape[1:3]) + (x.shape[4],) != want or x.shape[3] < 1:
            raise ValueError(
                f"MRNet expects (B, in_channels={want[0]}, num_layers={want[1]}, T>=1, in_dim={want[2]}), got {tuple(x.shape)}"
            )
