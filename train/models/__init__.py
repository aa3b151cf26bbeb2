"""The models ``mrnet-train`` trains, one file each, each declared once by ``@register_model``.

A model file holds its blocks, a frozen config and the model, and declares the model where its class
begins::

    @register_model("mrnet", config=MRNetConfig, title="MRNet", options=("width", ...))
    class MRNet(nn.Module): ...

and the import line below loads the file: a new model is one file and one name in that line
(docs/architecture.md shows one). The declaration says everything a run needs to know of the model
(:class:`Registered`): its options, the features it reads, its normalisations, evaluation unit and
tasks, its title in reports, how it is fitted (``gradient`` or ``probe``) and its preset.
``create_model(name, inputs, **options)`` is the only entry the training loop knows. ``inputs``
(:class:`ModelInput`) is what the store gives every model (frame layout and class count); ``options``
are the model's own settings, each a field of its config. Adding a model never touches the loop.

>>> inputs = ModelInput(feature="mel", channels=1, num_layers=1, dim=48, frame_rate=62.5, num_classes=4)
>>> model = create_model("mrnet", inputs, width=16, embed_dim=8)
>>> type(model).__name__, model.cfg.in_dim, model.cfg.num_classes
('MRNet', 48, 4)
>>> create_model("nope", inputs)
Traceback (most recent call last):
...
mrnet.core.errors.UserError: --model 'nope': choose one of mrnet, musicnext-softmax, musicnext, nnet1, nnet2, mixnet, fcn5, msecnn, linear
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mrnet.core.errors import UserError

# each file registers its models as it is imported; this order is the order of the --model choices, so the import
# sorter leaves it
# isort: off
from mrnet.train.models import mrnet, musicnext, nnet, fcn, linear  # noqa: F401

# isort: on
from mrnet.train.models.registry import (
    GRADIENT,
    PROBE,
    REGISTRY,
    ModelInput,
    Registered,
    count_parameters,
    register_model,
)

#: Every model ``mrnet-train --model NAME`` can train, by name.
MODELS: dict[str, Registered] = REGISTRY


def get(name: str) -> Registered:
    """The model ``name``, or a ``UserError`` listing the names there are."""
    if name not in MODELS:
        raise UserError(f"--model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def title(name: str) -> str:
    """The name reports show for model ``name`` (the name itself for one no longer registered)."""
    return MODELS[name].title if name in MODELS else name


def is_probe(name: str | None) -> bool:
    """Whether runs of model ``name`` (None: a run folder from before the choice, MRNet) are linear probes."""
    return name in MODELS and MODELS[name].fitting == PROBE


def create_model(name: str, inputs: ModelInput, **options: Any) -> nn.Module:
    """Build model ``name`` for a store's ``inputs`` with its ``options``."""
    return get(name).build(inputs, **options)


__all__ = [
    "GRADIENT",
    "MODELS",
    "PROBE",
    "ModelInput",
    "Registered",
    "count_parameters",
    "create_model",
    "get",
    "is_probe",
    "register_model",
    "title",
]
