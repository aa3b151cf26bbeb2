"""What every model entry is: what a store gives a model (``ModelInput``), what the run needs to know of
a model (``Registered``), and the one way a model file declares itself (``@register_model``).

>>> @register_model("demo-net", config=DemoConfig, title="Demo")    # doctest: +SKIP
... class DemoNet(nn.Module): ...
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, TypeVar

from torch import nn

from mrnet.core.errors import UserError
from mrnet.train.normalize import MODES
from mrnet.train.tasks import MULTI, SINGLE


@dataclass(frozen=True)
class ModelInput:
    """What a store gives a model: each sample is ``(B, channels, layers, frames, dim)``, one label of
    ``num_classes``; ``feature`` and ``extraction`` say what the values are (store provenance)."""

    feature: str
    channels: int
    num_layers: int  # stored layers fed, each of them
    dim: int
    frame_rate: float
    num_classes: int
    extraction: dict[str, Any] = field(default_factory=dict, compare=False)
    task: str = SINGLE  # or MULTI: num_classes tags, any number true at once


class ModelConfig(Protocol):
    """A model's config: a dataclass whose ``from_input`` fills the fields a store decides."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @classmethod
    def from_input(cls, inputs: ModelInput, **options: Any) -> Any: ...


#: How a model is fitted. ``gradient``: by the training loop, epoch by epoch (every network);
#: ``probe``: in closed form for each value of a regularisation grid, its choice made on validation
#: (``train/probe.py``), in one process, and read as the floor every other run is compared with.
GRADIENT, PROBE = "gradient", "probe"
FITTINGS = (GRADIENT, PROBE)


@dataclass(frozen=True)
class Registered:
    """One trainable model: its name, title, config and class, which config fields are user options
    (the rest come from :class:`ModelInput` through ``config.from_input``), and how a run fits,
    normalises, evaluates and reports it."""

    name: str
    config: type[ModelConfig]
    model: type
    options: tuple[str, ...] = ()
    #: the name reports, tables and figures show (``mrnet-report``, ``mrnet-compare``)
    title: str = ""
    features: tuple[str, ...] | None = None  # the feature profiles it reads (mrnet-extract --features); None: any
    #: the input normalisations (mrnet-train --normalize) it can train with. A model that normalises per
    #: instance itself has a boolean ``instance_norm`` option, which the run sets from --normalize.
    #: A model with its own recipe lists that recipe's mode first and leaves out ``instance``: its default.
    normalizations: tuple[str, ...] = MODES
    #: what of a track evaluation scores (``mrnet-train --eval-unit``): ``whole``, ``center`` (one crop of the
    #: training length at the middle) or ``chunks:N`` (N crops, their probabilities averaged)
    evaluation: str = "whole"
    #: the tasks it can learn (a model whose training needs one true class leaves out multi-label)
    tasks: tuple[str, ...] = (SINGLE, MULTI)
    #: how it is fitted (:data:`FITTINGS`)
    fitting: str = GRADIENT
    #: the preset ``mrnet-train --model NAME`` starts from when no ``--preset`` is given (None: ``paper``)
    preset: str | None = None
    #: what it changes in any preset it is trained with (an option the user gives still wins)
    preset_changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.fitting not in FITTINGS:
            raise ValueError(f"{self.name}: fitting {self.fitting!r} is not one of {FITTINGS}")
        if not self.title:
            object.__setattr__(self, "title", self.name)
        missing = [o for o in self.options if o not in {f.name for f in fields(self.config)}]
        if missing:
            raise ValueError(f"{self.name}: options {missing} are not fields of {self.config.__name__}")

    def build(self, inputs: ModelInput, **options: Any) -> nn.Module:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise UserError(
                f"--model {self.name} has no option(s) {', '.join(unknown)}; its options are {', '.join(self.options)}"
            )
        try:
            cfg = self.config.from_input(inputs, **options)
        except ValueError as err:
            raise UserError(
                f"these settings cannot build {self.model.__name__} (--model {self.name}): {err}; change the option it names"
            ) from err
        return self.model(cfg)


#: Every registered model by name, in the order their files are imported (``models/__init__.py``).
REGISTRY: dict[str, Registered] = {}

M = TypeVar("M", bound=type)


def register_model(name: str, *, config: type[ModelConfig], **entry: Any) -> Callable[[M], M]:
    """Declare the model class below as ``mrnet-train --model name`` (``entry``: the other fields of
    :class:`Registered`). A name is registered once."""

    def declare(model: M) -> M:
        if name in REGISTRY:
            if _source(REGISTRY[name].model) == _source(
                model
            ):  # its file imported again under another name (doctest collection)
                return model
            raise ValueError(
                f"--model {name} is registered twice ({REGISTRY[name].model.__qualname__} and {model.__qualname__})"
            )
        REGISTRY[name] = Registered(name, config, model, **entry)
        return model

    return declare


def _source(model: type) -> tuple[str, str]:
    file = getattr(sys.modules.get(model.__module__), "__file__", None)
    return (os.path.realpath(file) if file else model.__module__), model.__qualname__


def count_parameters(model: nn.Module, *, head: bool = True) -> int:
    """Number of parameters; ``head=False`` leaves out ``model.head`` (the class head).

    Everything else counts, including BatchNorm affine weights and biases (running statistics are
    buffers, not parameters).
    """
    total = sum(p.numel() for p in model.parameters())
    if not head:
        module = getattr(model, "head", None)
        if not isinstance(module, nn.Module):
            raise ValueError(f"{type(model).__name__} has no `head` module to leave out")
        total -= sum(p.numel() for p in module.parameters())
    return total
