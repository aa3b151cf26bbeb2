"""MusicNeXt: a ConvNeXt-T trunk without block normalisation, ELU inside the blocks, and an L-softmax head.

The whole model is in this file, read top to bottom: the blocks (channels-first LayerNorm, the
MusicNeXt block, the L-softmax head), the frozen config, then ``MusicNeXtS`` (the paper's softmax
ablation) and ``MusicNeXt`` (the L-softmax model) itself. Sources:

- the paper: Meng, Hao, Xiao, Zheng, "MusicNeXt: Addressing category bias in fused music using
  musical features and genre-sensitive adjustment layer", Intelligent Data Analysis 28(4):1029-1043,
  2024, doi:10.3233/IDA-230428 (its figures, equations and the margin value are not in the text);
- ConvNeXt-T (Liu et al., "A ConvNet for the 2020s", CVPR 2022; github.com/facebookresearch/ConvNeXt,
  ``models/convnext.py``): stages 3:3:9:3 of widths 96/192/384/768, layer scale 1e-6, trunc-normal init;
- L-softmax (Liu et al., "Large-Margin Softmax Loss for Convolutional Neural Networks", ICML 2016;
  github.com/wy1iu/LargeMargin_Softmax_Loss, and the PyTorch port github.com/amirhfarzaneh/lsoftmax-pytorch).

Input: one 128-bin log-Mel fragment of 256 frames (2.97 s at 22,050 Hz, hop 256: the store's
``mel128`` profile), ``(B, 1, 1, 256, 128) -> (B, 1, 128, 256)`` (channel, mel, time)::

    stem   Conv 4x4/4 1 -> 96, no norm                                  (B, 96, 32, 64)
    S1..S4 [3, 3, 9, 3] x Block(d): x + gamma * PW2(ELU(PW1(DW7x7(x)))) widths 96, 192, 384, 768
           between stages: LayerNorm (channels first) -> Conv 2x2/2      (B, 768, 4, 8) after S4
    head   mean over (mel, time) -> LayerNorm(768) -> L-softmax FC 768 -> K, no bias

Choices where the paper is silent or its text is cut off: ELU replaces ConvNeXt's GELU between the
pointwise layers (an ELU after the depthwise conv would leave PW1 PW2 one linear map); the block and
stem LayerNorms go ("we have deleted the normalization layers from the stem and MusicNeXt blocks"),
the downsampling and final LayerNorms stay; layer scale 1e-6 stays, no drop path; one input channel;
margin m = 4 (the best value in the L-softmax paper; the paper's own value is cut off) with the
lambda annealing of the L-softmax release, ``lambda = max(lambda_min, base * (1 + gamma * step) ** -power)``,
base 1000, power 35, lambda_min 0 and gamma 1e-4 (not its README's 2.5e-5, which still leaves
lambda ~ 1.7 after 8,000 steps; with 1e-4 lambda is ~68 after 800 steps and ~0 after 4,000), counted
in optimiser steps. The recipe's global z-score of the log-Mel (one mean and std over the training
set) is a run-level normalisation from stored statistics, not part of this model. Evaluation in the
recipe averages the softmax of a clip's ten 256-frame fragments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrnet.train.models.registry import ModelInput, register_model
from mrnet.train.tasks import SINGLE

FRAGMENT = 256  # frames per fragment in the paper's recipe (2,560 frames per clip / 10)


# ----------------------------------------------------------------------------- blocks


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map (ConvNeXt's ``channels_first``), eps 1e-6.

    >>> LayerNorm2d(8)(torch.randn(2, 8, 3, 5)).shape
    torch.Size([2, 8, 3, 5])
    """

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


class Block(nn.Module):
    """MusicNeXt block: ``x + gamma * PW2(ELU(PW1(DW7x7(x))))``, a ConvNeXt block without its LayerNorm.

    The pointwise layers are Linear layers on channels-last maps, as in ConvNeXt; gamma is the layer
    scale (init 1e-6). Parameters: ``8 d^2 + 56 d``.

    >>> block = Block(8)
    >>> block(torch.randn(2, 8, 4, 6)).shape, sum(p.numel() for p in block.parameters()) == 8 * 64 + 56 * 8
    (torch.Size([2, 8, 4, 6]), True)
    """

    def __init__(self, dim: int, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.ELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, d, H, W) -> (B, H, W, d)
        y = self.pwconv2(self.act(self.pwconv1(y)))  # (B, H, W, 4d) -> (B, H, W, d)
        y = (self.gamma * y).permute(0, 3, 1, 2)  # (B, H, W, d) -> (B, d, H, W)
        return x + y


class LSoftmaxLinear(nn.Module):
    """The L-softmax FC layer (Liu et al., ICML 2016): plain ``W x`` logits, no bias; in training the
    target logit gets an angular margin ``m``, eased in by an annealed ``lambda``.

    With ``f_j = |W_j| |x| cos(theta_j)``, training replaces the target logit ``f_y`` by
    ``(lambda f_y + |W_y| |x| psi(theta_y)) / (1 + lambda)``, where
    ``psi(theta) = (-1)^k cos(m theta) - 2k`` on ``[k pi/m, (k+1) pi/m]`` (k held constant for the
    gradient) and ``cos(m theta) = sum_n (-1)^n C(m, 2n) cos^(m-2n) sin^(2n)``. ``lambda`` falls with
    the optimiser step count, ``max(lambda_min, base * (1 + gamma * step) ** -power)``, and ``step``
    is a buffer, so it is saved in ``state_dict`` and a resumed run continues the schedule. As in
    the reference Caffe layer, each call of :meth:`margin_logits` counts one step first (the first
    step has ``step = 1``). The weight is initialised He/MSRA (Kaiming normal, fan-in).

    >>> head = LSoftmaxLinear(6, 3, margin=4)
    >>> x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    >>> head(x).shape, head.margin_logits(x, y).shape, int(head.step)
    (torch.Size([5, 3]), torch.Size([5, 3]), 1)
    """

    step: Tensor  # a buffer: optimiser steps counted so far

    def __init__(
        self,
        in_features: int,
        out_features: int,
        margin: int,
        *,
        base: float = 1000.0,
        gamma: float = 1e-4,
        power: float = 35.0,
        lambda_min: float = 0.0,
    ):
        super().__init__()
        self.margin, self.base, self.gamma, self.power, self.lambda_min = margin, base, gamma, power, lambda_min
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        nn.init.kaiming_normal_(self.weight)  # std sqrt(2 / in_features)
        # cos(m theta) as a polynomial in cos: (sign * C(m, 2n), power of cos, power of sin^2) per term
        self.terms = [((-1) ** n * math.comb(margin, 2 * n), margin - 2 * n, n) for n in range(margin // 2 + 1)]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_features) -> (B, out_features)``: the plain logits ``W x`` (inference)."""
        return F.linear(x, self.weight)

    def lam(self) -> Tensor:
        """The current lambda (a 0-d tensor): ``max(lambda_min, base * (1 + gamma * step) ** -power)``."""
        value = self.base * (1 + self.gamma * self.step.to(torch.float32)) ** (-self.power)
        return value.clamp(min=self.lambda_min)

    def margin_logits(self, x: Tensor, y: Tensor) -> Tensor:
        """``(B, in_features)``, labels ``(B,)`` -> ``(B, out_features)`` float32 logits with the
        target's margin; counts one optimiser step."""
        self.step += 1
        lam = self.lam()
        logits = F.linear(x, self.weight).float()  # (B, K)
        x32, w_y = x.float(), self.weight[y].float()  # (B, D), (B, D): float32 even under autocast
        f_y = (x32 * w_y).sum(dim=1)  # (B,) = |W_y| |x| cos(theta_y)
        norms = w_y.norm(dim=1) * x32.norm(dim=1)  # (B,)
        cos = f_y / (norms + 1e-10)  # (B,)
        sin2 = 1 - cos * cos
        cos_m = sum(c * cos**p * sin2**n for c, p, n in self.terms)  # (B,) cos(m theta)
        theta = torch.acos(cos.detach().clamp(-1 + 1e-7, 1 - 1e-7))
        k = torch.floor(theta * self.margin / math.pi)  # (B,), no gradient
        psi = (1 - 2 * torch.remainder(k, 2)) * cos_m - 2 * k  # (-1)^k cos(m theta) - 2k
        target = (lam * f_y + norms * psi) / (1 + lam)  # (B,)
        return logits.scatter(1, y.view(-1, 1), target.view(-1, 1))


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class MusicNeXtConfig:
    """Everything that fixes MusicNeXt's shape. Defaults are the paper's (ConvNeXt-T widths, m = 4).

    ``num_classes`` comes from the store; the input must be ``mel128`` frames: ``(1, 1, T, n_mels)``.
    The L-softmax fields (``margin``, ``lambda_*``) are unused by the softmax ablation.

    >>> MusicNeXtConfig(num_classes=10).min_frames
    32
    >>> MusicNeXtConfig(dims=(8, 16))
    Traceback (most recent call last):
    ...
    ValueError: depths (3, 3, 9, 3) and dims (8, 16) must have the same length (one per stage)
    """

    num_classes: int = 10
    n_mels: int = 128  # the store's dim
    depths: tuple[int, ...] = (3, 3, 9, 3)  # blocks per stage
    dims: tuple[int, ...] = (96, 192, 384, 768)  # width per stage
    layer_scale: float = 1e-6
    margin: int = 4  # L-softmax m
    lambda_base: float = 1000.0
    lambda_gamma: float = 1e-4
    lambda_power: float = 35.0
    lambda_min: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "dims", tuple(self.dims))
        if len(self.depths) != len(self.dims) or not self.dims:
            raise ValueError(f"depths {self.depths} and dims {self.dims} must have the same length (one per stage)")
        if min(self.depths) < 1 or min(self.dims) < 1 or self.num_classes < 1 or self.n_mels < 1:
            raise ValueError(f"depths, dims, num_classes and n_mels must be >= 1, got {self}")
        if self.margin < 1 or self.layer_scale <= 0:
            raise ValueError(f"margin must be >= 1 and layer_scale > 0, got {self.margin} and {self.layer_scale}")
        if min(self.lambda_base, self.lambda_gamma, self.lambda_power, self.lambda_min) < 0:
            raise ValueError("lambda_base, lambda_gamma, lambda_power and lambda_min must be >= 0")

    @classmethod
    def from_input(cls, inputs: ModelInput, **options: Any) -> MusicNeXtConfig:
        """The config for a store of 128-bin log-Mel frames (``mrnet-extract --features mel128``)."""
        want = dict(channels=1, layers=1, dim=cls.n_mels)
        got = dict(channels=inputs.channels, layers=inputs.num_layers, dim=inputs.dim)
        if got != want:
            raise ValueError(
                f"MusicNeXt reads 128-bin log-Mel frames (channels=1, layers=1, dim=128: mrnet-extract --features mel128); "
                f"the store holds {inputs.feature!r} frames with channels={inputs.channels}, layers={inputs.num_layers}, dim={inputs.dim}"
            )
        return cls(num_classes=inputs.num_classes, **options)

    @property
    def crop_frames(self) -> int:
        """The frames of one training example in the paper's recipe: a 256-frame fragment."""
        return FRAGMENT

    @property
    def min_frames(self) -> int:
        """The shortest input the strided stem and downsampling layers keep one column of: 4 * 2^(stages-1)."""
        return 4 * 2 ** (len(self.dims) - 1)


# ----------------------------------------------------------------------------- models


def _init_convnext(module: nn.Module) -> None:
    """ConvNeXt's init: truncated normal (std 0.02) weights and zero biases for convs and Linear layers."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


#: The recipe normalises with one global mean and std of the training set (``--normalize global``) and
#: scores a clip by averaging the softmax of its ten fragments.
_RECIPE = dict(features=("mel128",), normalizations=("global", "stored", "none"), evaluation="chunks:10")


@register_model(
    "musicnext-softmax", config=MusicNeXtConfig, title="MusicNeXt-S", preset="musicnext-softmax-paper", **_RECIPE
)
class MusicNeXtS(nn.Module):
    """MusicNeXt-S, the paper's ablation: the MusicNeXt trunk with a plain ``Linear(768, K)`` (with bias)
    and softmax cross-entropy. :class:`MusicNeXt` is the same network with the L-softmax head.

    Any ``T >= min_frames`` (32) runs: the trunk ends in a global average pool; frames past the last
    whole stride (T mod 32) are dropped by the strided convs. The recipe's examples are 256-frame fragments.

    >>> cfg = MusicNeXtConfig(num_classes=3, n_mels=32, depths=(1, 1), dims=(8, 16))
    >>> MusicNeXtS(cfg).eval()(torch.randn(2, 1, 1, 64, 32)).shape  # (B, channels, layers, T, mels)
    torch.Size([2, 3])

    The paper's configuration (ConvNeXt-T widths) for GTZAN's 10 classes has 27,811,306 parameters
    (the L-softmax model's 27,811,296 plus the 10 biases):

    >>> from mrnet.train.models.registry import count_parameters
    >>> with torch.device("meta"):
    ...     full = MusicNeXtS(MusicNeXtConfig(num_classes=10))
    >>> count_parameters(full)
    27811306
    """

    def __init__(self, cfg: MusicNeXtConfig):
        super().__init__()
        self.cfg = cfg
        dims = cfg.dims
        self.stem = nn.Conv2d(1, dims[0], kernel_size=4, stride=4)  # no LayerNorm (paper)
        self.downsample = nn.ModuleList(
            nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            for i in range(len(dims) - 1)
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*(Block(d, cfg.layer_scale) for _ in range(n))) for d, n in zip(dims, cfg.depths)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = self._make_head(cfg)
        self.apply(_init_convnext)

    def _make_head(self, cfg: MusicNeXtConfig) -> nn.Module:
        return nn.Linear(cfg.dims[-1], cfg.num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """``(B, 1, 1, T, n_mels)`` log-Mel frames -> ``(B, dims[-1])`` pooled, normalised features."""
        self._check_input(x)
        B, _, _, T, M = x.shape
        x = x.to(self.stem.weight.dtype).reshape(B, 1, T, M).transpose(2, 3)  # (B,1,1,T,M) -> (B,1,M,T)
        x = self.stem(x)  # (B, d0, M/4, T/4)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsample[i - 1](x)  # (B, d_i, H/2, W/2)
            x = stage(x)  # (B, d_i, H, W)
        return self.norm(x.mean(dim=(2, 3)))  # (B, d_last)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 1, 1, T, n_mels)`` -> ``(B, num_classes)`` logits."""
        return self.head(self.embed(x))

    def _check_input(self, x: Tensor) -> None:
        cfg = self.cfg
        if x.dim() != 5 or tuple(x.shape[1:3]) != (1, 1) or x.shape[4] != cfg.n_mels or x.shape[3] < cfg.min_frames:
            raise ValueError(
                f"{type(self).__name__} expects (B, 1, 1, T>={cfg.min_frames}, {cfg.n_mels}) log-Mel frames "
                f"({cfg.crop_frames}-frame fragments in the paper's recipe), got {tuple(x.shape)}"
            )


@register_model(
    "musicnext",
    config=MusicNeXtConfig,
    title="MusicNeXt",
    tasks=(SINGLE,),
    preset="musicnext-paper",
    options=("margin", "lambda_base", "lambda_gamma", "lambda_power", "lambda_min"),
    **_RECIPE,
)
class MusicNeXt(MusicNeXtS):
    """MusicNeXt (Meng et al., 2024): the trunk of :class:`MusicNeXtS` with the L-softmax head.

    ``forward`` gives the plain logits ``W x`` (inference, evaluation); the training step calls
    :meth:`training_logits` instead, which puts the margin on the target logit and counts a step of
    the lambda schedule (``head.step``, saved in ``state_dict``).

    >>> cfg = MusicNeXtConfig(num_classes=3, n_mels=32, depths=(1, 1), dims=(8, 16))
    >>> model = MusicNeXt(cfg)
    >>> x, y = torch.randn(2, 1, 1, 64, 32), torch.tensor([0, 2])
    >>> model.training_logits(x, y).shape, model.eval()(x).shape
    (torch.Size([2, 3]), torch.Size([2, 3]))

    The paper's configuration has 27,811,296 parameters for GTZAN (K = 10), 27,808,224 for
    ISMIR2004 (K = 6) and 27,810,528 for Extended Ballroom (K = 9): ``27,803,616 + 768 K``.

    >>> from mrnet.train.models.registry import count_parameters
    >>> with torch.device("meta"):
    ...     print([count_parameters(MusicNeXt(MusicNeXtConfig(num_classes=k))) for k in (10, 6, 9)])
    [27811296, 27808224, 27810528]
    """

    head: LSoftmaxLinear

    def _make_head(self, cfg: MusicNeXtConfig) -> nn.Module:
        return LSoftmaxLinear(
            cfg.dims[-1],
            cfg.num_classes,
            cfg.margin,
            base=cfg.lambda_base,
            gamma=cfg.lambda_gamma,
            power=cfg.lambda_power,
            lambda_min=cfg.lambda_min,
        )

    def training_logits(self, x: Tensor, y: Tensor) -> Tensor:
        """Features ``(B, 1, 1, T, n_mels)`` and labels ``(B,)`` -> the L-softmax training logits
        ``(B, num_classes)`` (float32). Call it once per optimiser step: it advances the lambda schedule."""
        return self.head.margin_logits(self.embed(x), y)
