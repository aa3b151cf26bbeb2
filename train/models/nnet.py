"""NNET1, NNET2 and MixNet: the 1-D raw-audio CNN, the 2-D residual MFCC CNN, and both side by side.

The whole family is in this file, read top to bottom: the blocks (NNET1's and NNET2's conv trunks,
max-and-average pooling, the fully connected classifier, the per-clip MFCC z-score), the frozen
configs, then ``NNet1``, ``NNet2`` and ``MixNet``. Sources: Bonato, Menti, Saretto, "Music Genre
Recognition with Convolutional Neural Networks" (report, FMA small), and the authors' code
(github.com/AlbertoSaretto/Music-Genre-Recognition, ``MGR/mgr/models.py``: ``CONV1D``/``NNET1D``,
``CONV2D``/``NNET2D``, ``MixNet``); NNET2 follows Zhang, Lei, Xu, Xing, "Improved Music Genre
Classification with Convolutional Neural Networks", INTERSPEECH 2016 (max and average pooling, a
residual connection).

Every example is one window of 2^18 = 262,144 samples at 44,100 Hz (5.94 s) = 256 stored frames of
1,024 samples (the store's ``wave`` profile), or the 256 MFCC frames of the same window (``mfcc``:
20 coefficients from a 128-band log-Mel, n_fft 2048, hop 1024), or both in one store (``wave+mfcc``:
per frame the 1,024 samples, then the 20 MFCC), which is how MixNet reads both kinds of a track with
one crop offset; NNET1 and NNET2 also read that store. The window is fixed: the pooling windows
(64 and 125) leave exactly one and two columns, which the classifier's input width depends on.
Training windows start anywhere; the test window starts at the middle of the track (``--eval-unit middle``:
frames ``T/2 ... T/2 + 256``, the authors' ``audio[len/2 : len/2 + 2^18]``; not centred on it).

    NNET1   (B,1,1,256,1024) -> (B,1,262144) -> 4 x [Conv1d -> BN -> ReLU (-> MaxPool)]   (B, 512, 65)
            -> max || avg pool 64 -> (B, 1024) -> FC 512-128-128-64-K (ReLU, no dropout)
    NNET2   (B,1,1,256,20) -> (B,1,256,20) -> z-score per clip and coefficient
            -> ReLU(c1 + c3(c2(c1))), c1 = Conv (4, 20) spanning the coefficients       (B, 256, 253, 1)
            -> max || avg pool (125, 1) -> (B, 1024) -> FC 1024-256-64-K (ReLU, Dropout 0.1)
    MixNet  [NNET1 trunk pooled (1024) || NNET2 trunk pooled (1024)] -> FC 512-256-128-K (ReLU, Dropout 0.1)

All convolution and linear weights are Xavier-uniform with zero biases. The authors' networks end
in a Softmax and then train with cross-entropy, which applies log-softmax again (a "double
softmax"). Here ``softmax_output`` is off by default: the model returns logits, so the loop's
cross-entropy is the ordinary one; ``softmax_output=True`` is the faithful mode (the loss values
are then comparable to the authors' logs; the predicted class is the same either way). The raw
waveform is never standardised (it is already in [-1, 1]); only the MFCC are, per clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrnet.train.models.registry import ModelInput, register_model

WINDOW = 256  # frames per example: 2^18 samples
SAMPLES = 1024  # waveform samples per stored frame
N_MFCC = 20
#: feature profile -> stored dim; the ``-window`` profiles hold the MFCC as the authors compute them (per 2^18-sample window)
DIMS = {
    "wave": SAMPLES,
    "mfcc": N_MFCC,
    "wave+mfcc": SAMPLES + N_MFCC,
    "mfcc-window": N_MFCC,
    "wave+mfcc-window": SAMPLES + N_MFCC,
}


# ----------------------------------------------------------------------------- blocks


class Conv1dTrunk(nn.Module):
    """NNET1's conv block: four ``Conv1d -> BN -> ReLU``, the first three followed by max pooling.

    Kernels 128/32/16/8, strides 32/2/2/2, paddings half the kernel, pools 4/2/2/none; 262,144
    samples -> 65 columns. Widths 64/128/256/512: 1,846,080 parameters.

    >>> Conv1dTrunk((4, 4, 4, 8))(torch.randn(2, 1, 262144)).shape
    torch.Size([2, 8, 65])
    """

    KERNELS, STRIDES, POOLS = (128, 32, 16, 8), (32, 2, 2, 2), (4, 2, 2, 1)

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        layers, c_in = [], 1
        for c_out, k, s, pool in zip(widths, self.KERNELS, self.STRIDES, self.POOLS):
            layers += [nn.Conv1d(c_in, c_out, k, stride=s, padding=k // 2), nn.BatchNorm1d(c_out), nn.ReLU()]
            layers += [nn.MaxPool1d(pool)] if pool > 1 else []
            c_in = c_out
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)  # (B, 1, 262144) -> (B, 64, 2048) -> (B, 128, 512) -> (B, 256, 128) -> (B, 512, 65)


class Conv2dTrunk(nn.Module):
    """NNET2's residual block: ``ReLU(c1 + c3(c2(c1(x))))`` over a (time, coefficient) map.

    c1 = Conv (4, n_mfcc) -> BN -> ReLU (the kernel spans every coefficient), c2 = Conv (4, 1) pad
    (2, 0) -> BN -> ReLU, c3 = Conv (4, 1) pad (1, 0) -> BN. Width 256: 547,072 parameters.

    >>> Conv2dTrunk(8)(torch.randn(2, 1, 256, 20)).shape
    torch.Size([2, 8, 253, 1])
    """

    def __init__(self, width: int = 256, n_mfcc: int = N_MFCC):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(1, width, (4, n_mfcc)), nn.BatchNorm2d(width), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(width, width, (4, 1), padding=(2, 0)), nn.BatchNorm2d(width), nn.ReLU())
        self.c3 = nn.Sequential(nn.Conv2d(width, width, (4, 1), padding=(1, 0)), nn.BatchNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        c1 = self.c1(x)  # (B, 1, 256, 20) -> (B, w, 253, 1)
        c3 = self.c3(self.c2(c1))  # (B, w, 254, 1) -> (B, w, 253, 1)
        return F.relu(c1 + c3)


def max_avg_pool(x: Tensor, window: int | tuple[int, int]) -> Tensor:
    """Max and average pooling with the same window, concatenated on the channels, then flattened.

    >>> max_avg_pool(torch.randn(2, 8, 65), 64).shape  # (B, C, L) -> (B, 2C * (L // 64))
    torch.Size([2, 16])
    >>> max_avg_pool(torch.randn(2, 8, 253, 1), (125, 1)).shape  # (B, C, H, 1) -> (B, 2C * (H // 125))
    torch.Size([2, 32])
    """
    if x.dim() == 3:
        pooled = torch.cat([F.max_pool1d(x, window), F.avg_pool1d(x, window)], dim=1)  # (B, 2C, L // window)
    else:
        pooled = torch.cat([F.max_pool2d(x, window), F.avg_pool2d(x, window)], dim=1)  # (B, 2C, H // 125, 1)
    return pooled.flatten(1)  # (B, 2C * columns), channel-major as the authors' view(B, -1)


def classifier(n_in: int, hidden: tuple[int, ...], n_out: int, dropout: float) -> nn.Sequential:
    """``Linear -> ReLU (-> Dropout)`` per hidden width, then ``Linear(hidden[-1], n_out)``.

    >>> classifier(16, (8, 4), 3, dropout=0.1)(torch.randn(2, 16)).shape
    torch.Size([2, 3])
    """
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def standardize(mfcc: Tensor) -> Tensor:
    """Z-score each clip's coefficients over time: scikit-learn's ``StandardScaler().fit_transform``
    on one clip's (T, n_mfcc) matrix (population std; a constant coefficient is only centred).

    >>> z = standardize(torch.randn(2, 1, 256, 20) * 5 + 3)  # (B, 1, T, n_mfcc), same shape out
    >>> z.mean(dim=2).abs().max().item() < 1e-5, (z.std(dim=2, correction=0) - 1).abs().max().item() < 1e-5
    (True, True)
    """
    mean = mfcc.mean(dim=2, keepdim=True)  # (B, 1, 1, n)
    std = mfcc.std(dim=2, keepdim=True, correction=0)  # (B, 1, 1, n)
    flat = std <= 1e-6 * (mean.abs() + 1)  # constant up to float rounding
    return (mfcc - mean) / torch.where(flat, torch.ones_like(std), std)


def _init_xavier(module: nn.Module) -> None:
    """The authors' init: Xavier-uniform weights and zero biases for every conv and linear layer."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class NNetConfig:
    """What fixes an NNET-family model; each model has its subclass with the paper's defaults.

    ``num_classes`` and ``in_dim`` (1024 ``wave``, 20 ``mfcc``, 1044 ``wave+mfcc``) come from the
    store; ``softmax_output`` is the only user option.

    >>> NNet2Config(in_dim=20).hidden, NNet2Config(in_dim=20).dropout
    ((1024, 256, 64), 0.1)
    >>> NNet1Config(in_dim=20)
    Traceback (most recent call last):
    ...
    ValueError: NNET1 reads wave or wave+mfcc or wave+mfcc-window frames (dim 1024 or 1044), not dim 20
    """

    NAME: ClassVar[str] = "NNET"
    READS: ClassVar[tuple[str, ...]] = ()  # the feature profiles it reads, the first one preferred

    num_classes: int = 8
    in_dim: int = SAMPLES
    widths_1d: tuple[int, ...] = (64, 128, 256, 512)  # NNET1 trunk
    width_2d: int = 256  # NNET2 trunk
    hidden: tuple[int, ...] = ()  # classifier hidden widths
    dropout: float = 0.0  # after each hidden layer
    softmax_output: bool = False  # True: end in Softmax, the authors' double softmax (faithful mode)

    def __post_init__(self):
        object.__setattr__(self, "widths_1d", tuple(self.widths_1d))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        dims = sorted({DIMS[f] for f in self.READS})
        if self.in_dim not in dims:
            raise ValueError(
                f"{self.NAME} reads {' or '.join(self.READS)} frames (dim {' or '.join(map(str, dims))}), not dim {self.in_dim}"
            )
        if len(self.widths_1d) != 4 or min(self.widths_1d + self.hidden + (self.width_2d, self.num_classes)) < 1:
            raise ValueError(f"widths_1d must be four widths, and every width and num_classes >= 1, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_input(cls, inputs: ModelInput, **options: Any) -> NNetConfig:
        """The config for a store of ``READS`` frames: ``(channels=1, layers=1, dim)``."""
        dims = [DIMS[f] for f in cls.READS]
        if (inputs.channels, inputs.num_layers) != (1, 1) or inputs.dim not in dims:
            reads = " or ".join(f"{f} frames (dim {DIMS[f]})" for f in cls.READS)
            raise ValueError(
                f"{cls.NAME} reads {reads}, channels=1, layers=1 (mrnet-extract --features {cls.READS[0]}); "
                f"the store holds {inputs.feature!r} frames with channels={inputs.channels}, layers={inputs.num_layers}, dim={inputs.dim}"
            )
        return cls(num_classes=inputs.num_classes, in_dim=inputs.dim, **options)

    @property
    def crop_frames(self) -> int:
        """The frames of every example, training and evaluation: 256 (2^18 samples)."""
        return WINDOW


@dataclass(frozen=True)
class NNet1Config(NNetConfig):
    NAME: ClassVar[str] = "NNET1"
    READS: ClassVar[tuple[str, ...]] = ("wave", "wave+mfcc", "wave+mfcc-window")
    in_dim: int = SAMPLES
    hidden: tuple[int, ...] = (512, 128, 128, 64)
    dropout: float = 0.0  # the authors found dropout hurt NNET1


@dataclass(frozen=True)
class NNet2Config(NNetConfig):
    NAME: ClassVar[str] = "NNET2"
    READS: ClassVar[tuple[str, ...]] = ("mfcc-window", "mfcc", "wave+mfcc-window", "wave+mfcc")
    in_dim: int = N_MFCC
    hidden: tuple[int, ...] = (1024, 256, 64)
    dropout: float = 0.1


@dataclass(frozen=True)
class MixNetConfig(NNetConfig):
    NAME: ClassVar[str] = "MixNet"
    READS: ClassVar[tuple[str, ...]] = ("wave+mfcc-window", "wave+mfcc")
    in_dim: int = SAMPLES + N_MFCC
    hidden: tuple[int, ...] = (512, 256, 128)
    dropout: float = 0.1


# ----------------------------------------------------------------------------- models


#: The waveform is never scaled and the MFCC are z-scored per clip inside the model (``--normalize none``);
#: the test window starts at the middle of the track, as the authors' code cuts it (``--eval-unit middle``).
_RECIPE = dict(options=("softmax_output",), normalizations=("none",), evaluation="middle")


class _NNet(nn.Module):
    """What the three share: cutting the waveform and the MFCC out of a batch, the output, the input check."""

    head: nn.Sequential  # each model's classifier: Linear first

    @property
    def _dtype(self) -> torch.dtype:
        """The head's weights' dtype, which the input is cast to."""
        first = self.head[0]
        assert isinstance(first, nn.Linear)
        return first.weight.dtype

    def __init__(self, cfg: NNetConfig):
        super().__init__()
        self.cfg = cfg

    def _wave(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        wave = x[..., :SAMPLES].to(self._dtype)  # (B, 1, 1, 256, 1024): the samples, never scaled
        return wave.reshape(B, 1, WINDOW * SAMPLES)  # (B,1,1,256,1024) -> (B,1,262144)

    def _mfcc(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        mfcc = x[..., -N_MFCC:].to(self._dtype)  # (B, 1, 1, 256, 20): the last 20 of each frame
        return standardize(mfcc.reshape(B, 1, WINDOW, N_MFCC))  # (B,1,1,256,20) -> (B,1,256,20)

    def _output(self, logits: Tensor) -> Tensor:
        return logits.softmax(dim=1) if self.cfg.softmax_output else logits  # (B, K)

    def _check_input(self, x: Tensor) -> None:
        want = (1, 1, WINDOW, self.cfg.in_dim)
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"{self.cfg.NAME} expects (B, 1, 1, 256, {self.cfg.in_dim}): windows of exactly 256 frames "
                f"(2^18 = 262,144 samples at 44.1 kHz), got {tuple(x.shape)}"
            )


@register_model("nnet1", config=NNet1Config, title="NNET1", preset="nnet1-paper", features=NNet1Config.READS, **_RECIPE)
class NNet1(_NNet):
    """NNET1 (Bonato et al.): a 1-D CNN on the raw 2^18-sample window; 2,461,832 parameters for 8 classes.

    >>> cfg = NNet1Config(num_classes=3, widths_1d=(4, 4, 4, 8), hidden=(16, 8))
    >>> NNet1(cfg).eval()(torch.randn(2, 1, 1, 256, 1024)).shape  # (B, channels, layers, frames, samples)
    torch.Size([2, 3])
    >>> from mrnet.train.models.registry import count_parameters
    >>> with torch.device("meta"):
    ...     count_parameters(NNet1(NNet1Config(num_classes=8)))
    2461832
    """

    def __init__(self, cfg: NNet1Config):
        super().__init__(cfg)
        self.conv1d = Conv1dTrunk(cfg.widths_1d)
        self.head = classifier(2 * cfg.widths_1d[-1], cfg.hidden, cfg.num_classes, cfg.dropout)
        self.apply(_init_xavier)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 1, 1, 256, 1024 or 1044)`` -> ``(B, num_classes)`` logits (probabilities if ``softmax_output``)."""
        self._check_input(x)
        z = max_avg_pool(self.conv1d(self._wave(x)), 64)  # (B, 512, 65) -> (B, 1024)
        return self._output(self.head(z))


@register_model("nnet2", config=NNet2Config, title="NNET2", preset="nnet2-paper", features=NNet2Config.READS, **_RECIPE)
class NNet2(_NNet):
    """NNET2 (Bonato et al.): a 2-D residual CNN on 256 x 20 MFCC; 1,876,040 parameters for 8 classes.

    >>> cfg = NNet2Config(num_classes=3, width_2d=8, hidden=(16, 8))
    >>> NNet2(cfg).eval()(torch.randn(2, 1, 1, 256, 20)).shape  # (B, channels, layers, frames, mfcc)
    torch.Size([2, 3])
    >>> from mrnet.train.models.registry import count_parameters
    >>> with torch.device("meta"):
    ...     count_parameters(NNet2(NNet2Config(num_classes=8)))
    1876040
    """

    def __init__(self, cfg: NNet2Config):
        super().__init__(cfg)
        self.conv2d = Conv2dTrunk(cfg.width_2d)
        self.head = classifier(4 * cfg.width_2d, cfg.hidden, cfg.num_classes, cfg.dropout)
        self.apply(_init_xavier)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 1, 1, 256, 20 or 1044)`` -> ``(B, num_classes)`` logits (probabilities if ``softmax_output``)."""
        self._check_input(x)
        z = max_avg_pool(self.conv2d(self._mfcc(x)), (125, 1))  # (B, 256, 253, 1) -> (B, 1024)
        return self._output(self.head(z))


@register_model(
    "mixnet", config=MixNetConfig, title="MixNet", preset="mixnet-paper", features=MixNetConfig.READS, **_RECIPE
)
class MixNet(_NNet):
    """MixNet (Bonato et al.): NNET1's and NNET2's trunks side by side on the same window, freshly
    initialised and trained jointly, and a new classifier; 3,607,496 parameters for 8 classes.

    >>> cfg = MixNetConfig(num_classes=3, widths_1d=(4, 4, 4, 8), width_2d=8, hidden=(16, 8))
    >>> MixNet(cfg).eval()(torch.randn(2, 1, 1, 256, 1044)).shape  # per frame: 1024 samples, 20 MFCC
    torch.Size([2, 3])
    >>> from mrnet.train.models.registry import count_parameters
    >>> with torch.device("meta"):
    ...     count_parameters(MixNet(MixNetConfig(num_classes=8)))
    3607496
    """

    def __init__(self, cfg: MixNetConfig):
        super().__init__(cfg)
        self.conv1d = Conv1dTrunk(cfg.widths_1d)
        self.conv2d = Conv2dTrunk(cfg.width_2d)
        self.head = classifier(2 * cfg.widths_1d[-1] + 4 * cfg.width_2d, cfg.hidden, cfg.num_classes, cfg.dropout)
        self.apply(_init_xavier)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 1, 1, 256, 1044)`` -> ``(B, num_classes)`` logits (probabilities if ``softmax_output``)."""
        self._check_input(x)
        z1 = max_avg_pool(self.conv1d(self._wave(x)), 64)  # (B, 1024)
        z2 = max_avg_pool(self.conv2d(self._mfcc(x)), (125, 1))  # (B, 1024)
        return self._output(self.head(torch.cat([z1, z2], dim=1)))  # (B, 2048) -> (B, K)
