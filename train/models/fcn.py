"""FCN-5 and MsE-CNN: five 3x3 conv layers over a 96-bin log-Mel clip, without and with multi-scale carries.

Both models are in this file, read top to bottom: the block (conv -> BN -> ReLU), the frozen configs,
then ``FCN5`` and ``MsECNN``. Sources:

- FCN-5: Choi, Fazekas, Sandler, "Automatic tagging using deep convolutional neural networks",
  ISMIR 2016 (arXiv:1606.00298), as released in github.com/keunwoochoi/music-auto_tagging-keras
  (``music_tagger_cnn.py``: widths 64-128-128-128-64, pools (2,4) (2,4) (2,4) (3,5) (4,4)) and as
  re-implemented in PyTorch in github.com/minzwon/sota-music-tagging-models (``training/model.py``,
  class ``FCN``: input BatchNorm2d(1), BN + ReLU, Dropout 0.5 before the dense layer; Won et al.,
  "Evaluation of CNN-based Automatic Music Tagging Models", SMC 2020), whose layers these are;
- MsE-CNN: Hamidi et al., "Multi-scale Embedded CNN for Music Tagging (MsE-CNN)", 2019: "at each
  level, we preserve the features before passing them through a convolutional layer, then
  concatenate them with results of the convolution by passing them through a max pooling", giving
  "almost eight times as many features as FCN-5" at the output (513 = 1 + 64 + 128 + 128 + 128 + 64
  against 64).

Input: one clip of 1,366 frames of a 96-bin log-Mel at 12 kHz, n_fft 512, hop 256 (29.12 s; the
store's ``mel96`` profile), ``(B, 1, 1, 1366, 96) -> (B, 1, 96, 1366)`` (channel, mel, time)::

    FCN-5    BN(1) -> 5 x [Conv 3x3 -> BN -> ReLU -> MaxPool]           (B, 64, 1, 1)
             -> Dropout 0.5 -> Linear 64 -> K
    MsE-CNN  BN(1) -> 5 x [x = MaxPool(cat(x, Conv 3x3 -> BN -> ReLU (x)))] (B, 513, 1, 1)
             -> Dropout 0.5 -> Linear 513 -> K

The pools take the 96 mel bins to 1 and 1,366 frames to 1 (341, 85, 21, 4, 1). The time pools
multiply to 1,280, so inputs of 1,280 to 2,559 frames end at one column (trailing frames dropped,
as a 29.1 s clip's 1,813 frames at 16 kHz do in the PyTorch reference); longer inputs (a whole
track) end with a few columns, and a max over them gives one vector, the global max pooling the
PyTorch reference's other CNNs use. Shorter inputs are refused. The input BatchNorm stands in for a
fixed normalisation, so the model needs no run statistics. Weights keep PyTorch's default init, as
in the PyTorch reference. The models return logits: the loop applies softmax cross-entropy for genres
or sigmoid binary cross-entropy for tags.

Where the sources differ or are silent, the choices made here: the narrow released widths, not the
paper's 128...2048 (the "eight times" ratio fits only the narrow net); BN + ReLU and Dropout 0.5 as in
the PyTorch reference, not the Keras code's ELU; MsE-CNN's connection is the dense per-level
concatenation (each conv reads every feature carried so far, the text read literally), with
``connection="carry"`` the ablation where the convs form FCN-5's chain and the earlier features are
only pooled and carried to the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrnet.train.models.registry import ModelInput, register_model

CLIP = 1366  # frames of a 29.12 s clip at 12 kHz, hop 256
CONNECTIONS = ("dense", "carry")


# ----------------------------------------------------------------------------- block


class ConvBNReLU(nn.Sequential):
    """Conv2d 3x3 (stride 1, padding 1: the map keeps its size) -> BatchNorm2d -> ReLU.

    >>> ConvBNReLU(1, 4)(torch.randn(2, 1, 6, 10)).shape
    torch.Size([2, 4, 6, 10])
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class FCNConfig:
    """What fixes FCN-5's shape. Defaults are the released FCN-5 (50 MagnaTagATune tags).

    ``num_classes`` comes from the store, whose frames must be ``mel96``: ``(1, 1, T, 96)``.

    >>> FCNConfig().min_frames
    1280
    >>> FCNConfig(n_mels=128)
    Traceback (most recent call last):
    ...
    ValueError: the frequency pools (2, 2, 2, 3, 4) take 96 mel bins to 1, not 128
    """

    NAME: ClassVar[str] = "FCN-5"

    num_classes: int = 50
    n_mels: int = 96  # the store's dim
    widths: tuple[int, ...] = (64, 128, 128, 128, 64)
    pools: tuple[tuple[int, int], ...] = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))  # (mel, time) per layer
    dropout: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "pools", tuple(tuple(p) for p in self.pools))
        if len(self.widths) != len(self.pools) or not self.widths or min(self.widths) < 1 or self.num_classes < 1:
            raise ValueError(
                f"one width >= 1 per pool and num_classes >= 1, got widths {self.widths}, pools {self.pools}"
            )
        mel_pools = tuple(p[0] for p in self.pools)
        if math.prod(mel_pools) != self.n_mels:
            raise ValueError(
                f"the frequency pools {mel_pools} take {math.prod(mel_pools)} mel bins to 1, not {self.n_mels}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_input(cls, inputs: ModelInput, **options: Any) -> FCNConfig:
        """The config for a store of 96-bin log-Mel frames (``mrnet-extract --features mel96``)."""
        if (inputs.channels, inputs.num_layers, inputs.dim) != (1, 1, cls.n_mels):
            raise ValueError(
                f"{cls.NAME} reads 96-bin log-Mel frames at 12 kHz (channels=1, layers=1, dim=96: mrnet-extract --features mel96); "
                f"the store holds {inputs.feature!r} frames with channels={inputs.channels}, layers={inputs.num_layers}, dim={inputs.dim}"
            )
        return cls(num_classes=inputs.num_classes, **options)

    @property
    def crop_frames(self) -> int:
        """The frames of one example in the recipe: a whole 29.12 s clip, 1,366 frames."""
        return CLIP

    @property
    def min_frames(self) -> int:
        """The shortest input the time pools leave one column of: their product, 1,280."""
        return math.prod(p[1] for p in self.pools)


@dataclass(frozen=True)
class MsECNNConfig(FCNConfig):
    """FCN-5's config and the carry topology: ``"dense"`` (default) or ``"carry"`` (the ablation).

    >>> MsECNNConfig(connection="carry").carried
    513
    """

    NAME: ClassVar[str] = "MsE-CNN"

    connection: str = "dense"

    def __post_init__(self):
        super().__post_init__()
        if self.connection not in CONNECTIONS:
            raise ValueError(f"connection {self.connection!r} is not one of {', '.join(map(repr, CONNECTIONS))}")

    @property
    def carried(self) -> int:
        """Channels that reach the head: the input's one plus every conv's output."""
        return 1 + sum(self.widths)


# ----------------------------------------------------------------------------- models


def _mel_map(model: FCN5 | MsECNN, x: Tensor) -> Tensor:
    """Check a batch and lay it out as an image: ``(B, 1, 1, T, 96) -> (B, 1, 96, T)``."""
    cfg = model.cfg
    if x.dim() != 5 or tuple(x.shape[1:3]) != (1, 1) or x.shape[4] != cfg.n_mels or x.shape[3] < cfg.min_frames:
        raise ValueError(
            f"{cfg.NAME} expects (B, 1, 1, T, {cfg.n_mels}) log-Mel frames with T >= {cfg.min_frames} "
            f"({cfg.crop_frames} frames, a 29.12 s clip, in the recipe), got {tuple(x.shape)}"
        )
    B, _, _, T, M = x.shape
    x = x.to(model.input_bn.weight.dtype)
    return x.reshape(B, 1, T, M).transpose(2, 3)  # (B,1,1,T,96) -> (B,1,96,T)


#: The input BatchNorm normalises (``--normalize none``); the clip is the centre 1,366 frames (29.12 s), as Choi's code cuts it.
_RECIPE = dict(features=("mel96",), normalizations=("none", "stored", "global"), evaluation="center")


@register_model("fcn5", config=FCNConfig, title="FCN-5", preset="fcn5-paper", **_RECIPE)
class FCN5(nn.Module):
    """FCN-5 (Choi et al., 2016), the released narrow widths: 447,732 parameters for 50 tags
    (the input BatchNorm's 2 included).

    >>> cfg = FCNConfig(num_classes=3, widths=(4, 4, 4, 4, 4))
    >>> FCN5(cfg).eval()(torch.randn(2, 1, 1, 1366, 96)).shape  # (B, channels, layers, T, mels)
    torch.Size([2, 3])
    >>> from mrnet.train.models.registry import count_parameters
    >>> count_parameters(FCN5(FCNConfig(num_classes=50)))
    447732
    """

    def __init__(self, cfg: FCNConfig):
        super().__init__()
        self.cfg = cfg
        self.input_bn = nn.BatchNorm2d(1)
        ins = (1,) + cfg.widths[:-1]
        self.layers = nn.ModuleList(ConvBNReLU(c_in, c_out) for c_in, c_out in zip(ins, cfg.widths))
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.widths[-1], cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 1, 1, T >= 1280, 96)`` -> ``(B, num_classes)`` logits."""
        x = self.input_bn(_mel_map(self, x))  # (B, 1, 96, T)
        for layer, pool in zip(self.layers, self.cfg.pools):
            x = F.max_pool2d(layer(x), pool)  # (B, 64, 48, 341) ... (B, 64, 1, 1) for T = 1366
        x = x.amax(dim=(2, 3))  # (B, 64, 1, W) -> (B, 64); W = 1 unless T >= 2560
        return self.head(self.dropout(x))


@register_model(
    "msecnn", config=MsECNNConfig, title="MsE-CNN", preset="msecnn-paper", options=("connection",), **_RECIPE
)
class MsECNN(nn.Module):
    """MsE-CNN (Hamidi et al., 2019) on FCN-5's widths and pools: 953,446 parameters for 50 tags with
    the dense connection, 470,182 with ``connection="carry"`` (input BatchNorm included).

    Level l: ``x_l = MaxPool_l(cat(x_{l-1}, ConvBNReLU_l(inp)))``, where ``inp`` is everything
    carried so far, ``x_{l-1}`` (dense), or only the previous conv's output, the last channels of
    ``x_{l-1}`` (carry: FCN-5's chain, its features pooled and carried alongside).

    >>> cfg = MsECNNConfig(num_classes=3, widths=(4, 4, 4, 4, 4))
    >>> MsECNN(cfg).eval()(torch.randn(2, 1, 1, 1366, 96)).shape  # (B, channels, layers, T, mels)
    torch.Size([2, 3])
    >>> from mrnet.train.models.registry import count_parameters
    >>> [count_parameters(MsECNN(MsECNNConfig(num_classes=50, connection=c))) for c in ("dense", "carry")]
    [953446, 470182]
    """

    def __init__(self, cfg: MsECNNConfig):
        super().__init__()
        self.cfg = cfg
        self.input_bn = nn.BatchNorm2d(1)
        carried = tuple(accumulate(cfg.widths, initial=1))  # channels of x_0 .. x_5: 1, 65, 193, 321, 449, 513
        ins = carried[:-1] if cfg.connection == "dense" else (1,) + cfg.widths[:-1]
        self.conv_in = tuple(ins)
        self.layers = nn.ModuleList(ConvBNReLU(c_in, c_out) for c_in, c_out in zip(ins, cfg.widths))
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.carried, cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 1, 1, T >= 1280, 96)`` -> ``(B, num_classes)`` logits."""
        x = self.input_bn(_mel_map(self, x))  # (B, 1, 96, T)
        for layer, pool, c_in in zip(self.layers, self.cfg.pools, self.conv_in):
            y = layer(x[:, -c_in:])  # (B, c_in, H, W) -> (B, width, H, W); dense: c_in = every carried channel
            x = F.max_pool2d(torch.cat((x, y), dim=1), pool)  # (B, carried + width, H / p, W / q)
        x = x.amax(dim=(2, 3))  # (B, 513, 1, W) -> (B, 513); W = 1 unless T >= 2560
        return self.head(self.dropout(x))
