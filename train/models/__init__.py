"""The models ``mrnet-train`` trains, one file each, behind one name.

A model file holds its blocks, a frozen config and the model, and names them at its end::

    MODEL = Registered("mrnet", MRNetConfig, MRNet, options=("channels", ...))

and :data:`MODELS` below lists each file's ``MODEL``: a new model is one file and one line here. A
file holding a family registers several entries and lists them in its ``MODELS`` tuple
(``musicnext.py``: musicnext, musicnext-softmax; ``nnet.py``: nnet1, nnet2, mixnet; ``fcn.py``: fcn5,
msecnn). ``Registered.features`` names the feature profiles each model reads.
``create_model(name, inputs, **options)`` is the only entry the training loop knows. ``inputs``
(:class:`ModelInput`) is what the store gives every model (frame layout and class count); ``options``
are the model's own settings, each a field of its config. Adding a model never touches the loop.

>>> inputs = ModelInput(feature="mel", channels=1, layers=1, dim=48, frame_rate=62.5, num_classes=4)
>>> model = create_model("mrnet", inputs, channels=16, embed_dim=8)
>>> type(model).__name__, model.cfg.in_dim, model.cfg.num_classes
('MRNet', 48, 4)
>>> create_model("nope", inputs)
Traceback (most recent call last):
...
mrnet.core.errors.UserError: --model 'nope': choose one of mrnet, musicnext, musicnext-softmax, nnet1, nnet2, mixnet, fcn5, msecnn, linear
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mrnet.core.errors import UserError
from mrnet.train.models import fcn, linear, mrnet, musicnext, nnet
from mrnet.train.models.registry import ModelInput, Registered, count_parameters

#: Every model ``mrnet-train --model NAME`` can train, by name.
MODELS: dict[str, Registered] = {entry.name: entry for entry in (mrnet.MODEL, *musicnext.MODELS, *nnet.MODELS, *fcn.MODELS, linear.MODEL)}


def get(name: str) -> Registered:
    """The model ``name``, or a ``UserError`` listing the names there are."""
    if name not in MODELS:
        raise UserError(f"--model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def create_model(name: str, inputs: ModelInput, **options: Any) -> nn.Module:
    """Build model ``name`` for a store's ``inputs`` with its ``options``."""
    return get(name).build(inputs, **options)


__all__ = ["MODELS", "ModelInput", "Registered", "count_parameters", "create_model", "get"]
