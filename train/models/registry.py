"""What every model entry is: what a store gives a model (``ModelInput``), and a name for a model's config and class (``Registered``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from torch import nn

from mrnet.core.errors import UserError


@dataclass(frozen=True)
class ModelInput:
    """What a store gives a model: each sample is ``(B, channels, layers, frames, dim)``, one label of
    ``num_classes``; ``feature`` and ``extraction`` say what the values are (store provenance)."""

    feature: str
    channels: int
    layers: int
    dim: int
    frame_rate: float
    num_classes: int
    extraction: dict[str, Any] = field(default_factory=dict, compare=False)
    task: str = "single-label"  # or "multi-label": num_classes tags, any number true at once


@dataclass(frozen=True)
class Registered:
    """One trainable model: its name, config and class, and which config fields are user options
    (the rest come from :class:`ModelInput` through ``config.from_input``)."""

    name: str
    config: type
    model: type
    options: tuple[str, ...]
    features: tuple[str, ...] | None = None  # the feature profiles it reads (mrnet-extract --features); None: any
    #: the input normalisations (mrnet-train --normalize) it can train with. A model that normalises per
    #: instance itself has a boolean ``instance_norm`` option, which the run sets from --normalize.
    #: A model with its own recipe lists that recipe's mode first and leaves out ``instance``: its default.
    normalizations: tuple[str, ...] = ("instance", "stored", "global", "none")
    #: what of a track evaluation scores (``mrnet-train --eval-unit``): ``whole``, ``center`` (one crop of the
    #: training length at the middle) or ``chunks:N`` (N crops, their probabilities averaged)
    evaluation: str = "whole"
    #: the tasks it can learn (a model whose training needs one true class leaves out multi-label)
    tasks: tuple[str, ...] = ("single-label", "multi-label")

    def __post_init__(self):
        missing = [o for o in self.options if o not in {f.name for f in fields(self.config)}]
        if missing:
            raise ValueError(f"{self.name}: options {missing} are not fields of {self.config.__name__}")

    def build(self, inputs: ModelInput, **options: Any) -> nn.Module:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise UserError(f"--model {self.name} has no option(s) {', '.join(unknown)}; its options are {', '.join(self.options)}")
        try:
            cfg = self.config.from_input(inputs, **options)
        except ValueError as err:
            raise UserError(f"these settings cannot build {self.model.__name__} (--model {self.name}): {err}; change the option it names") from err
        return self.model(cfg)


def count_parameters(model: nn.Module, *, head: bool = True) -> int:
    """Number of parameters; ``head=False`` leaves out ``model.head`` (the class head).

    Everything else counts, including BatchNorm affine weights and biases (running statistics are
    buffers, not parameters).
    """
    total = sum(p.numel() for p in model.parameters())
    if not head:
        if not isinstance(getattr(model, "head", None), nn.Module):
            raise ValueError(f"{type(model).__name__} has no `head` module to leave out")
        total -= sum(p.numel() for p in model.head.parameters())
    return total

