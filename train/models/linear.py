"""The linear probe (``mrnet-train --model linear``): the floor every result is read against.

Per stored feature (channel, layer, dimension) the mean and standard deviation over time, then
standardisation of those statistics (a BatchNorm without affine weights: batch statistics in
training, the running averages over the training crops in evaluation), then one linear layer::

    (B, channels, layers, T, dim) -> mean, std over T -> (B, 2 * channels * layers * dim)
      -> standardise -> Linear -> logits (B, classes)

It is trained by the same loop as every model (class-weighted cross-entropy, AdamW whose weight
decay is the regulariser) and its checkpoint is chosen on the validation split, so it reports,
resumes and predicts like the others. With ``--model linear`` the run uses the probe's recipe
(``mrnet.train.presets.PROBE``: whole 30 s crops, no augmentation). On the real-music benchmark it was
checked against scikit-learn's logistic regression on whole-track statistics with the
regularisation chosen on validation (docs/results.md).

>>> from mrnet.train.models.registry import ModelInput
>>> probe = LinearProbe(LinearConfig.from_input(ModelInput("mel", 1, 1, 48, 62.5, 5))).eval()
>>> probe(torch.randn(3, 1, 1, 100, 48)).shape, probe.head.in_features
(torch.Size([3, 5]), 96)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mrnet.train.models.registry import PROBE, ModelInput, register_model
from mrnet.train.tasks import SINGLE


@dataclass(frozen=True)
class LinearConfig:
    in_dim: int
    in_channels: int = 1
    num_layers: int = 1
    num_classes: int = 10

    def __post_init__(self):
        for name in ("in_dim", "in_channels", "num_layers", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_input(cls, inputs: ModelInput, **options: Any) -> LinearConfig:
        return cls(
            in_dim=inputs.dim,
            in_channels=inputs.channels,
            num_layers=inputs.num_layers,
            num_classes=inputs.num_classes,
            **options,
        )

    @property
    def statistics(self) -> int:
        """Inputs of the linear layer: mean and std of every stored feature."""
        return 2 * self.in_channels * self.num_layers * self.in_dim


def stats_pool(x: Tensor) -> Tensor:
    """``(B, C, L, T, D)`` -> ``(B, 2*C*L*D)``: per-feature mean over time, then std (0 for one frame).

    >>> stats_pool(torch.tensor([[[[[1.0], [3.0]]]]])).tolist()
    [[2.0, 1.0]]
    """
    mean = x.mean(dim=3)
    std = (x.var(dim=3, unbiased=False) + 1e-8).sqrt() if x.shape[3] > 1 else torch.zeros_like(mean)
    return torch.cat((mean.flatten(1), std.flatten(1)), dim=1)


#: Instance normalisation would make every mean 0 and every std 1: nothing left to read. Fitted in closed
#: form (train/probe.py), on whole tracks without augmentation, single-label only.
@register_model(
    "linear",
    config=LinearConfig,
    title="Linear probe",
    normalizations=("none", "stored"),
    tasks=(SINGLE,),
    fitting=PROBE,
    preset_changes={"augment": False},
)
class LinearProbe(nn.Module):
    """Statistics pooling -> standardisation -> Linear."""

    def __init__(self, cfg: LinearConfig):
        super().__init__()
        self.cfg = cfg
        self.standardize = nn.BatchNorm1d(cfg.statistics, affine=False)
        self.head = nn.Linear(cfg.statistics, cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        want = (self.cfg.in_channels, self.cfg.num_layers, self.cfg.in_dim)
        if x.dim() != 5 or (x.shape[1], x.shape[2], x.shape[4]) != want:
            raise ValueError(f"LinearProbe expects (B, {want[0]}, {want[1]}, T, {want[2]}), got {tuple(x.shape)}")
        return self.head(self.standardize(stats_pool(x.float())))
