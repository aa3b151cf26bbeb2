"""Input normalisation, a recorded choice of every run (``mrnet-train --normalize``).

- ``instance``: each track (each crop in training) is normalised per feature over time, so every
  feature has mean 0 and variance 1 within it. The authors' choice: MRNet's stem starts with it. It
  also removes each feature's level, which on Mel features is the spectral envelope (timbre).
- ``stored``: every feature is standardised with the mean and standard deviation of the run's
  **training** tracks, from the sums the store keeps per split and fold (``store/statistics.py``).
  The run records the values it used in ``normalization.json``, and ``mrnet-predict`` applies those.
- ``global``: as ``stored``, with one mean and one standard deviation over every feature of the
  training tracks (per channel and layer), so the features keep their levels relative to each other:
  MusicNeXt's recipe (one z-score over the training set's log-Mel).
- ``none``: the stored values as they are (FCN-5 and MsE-CNN normalise with their own input
  BatchNorm, NNET2 z-scores its MFCC per clip inside the model).

The default depends on the feature kind (:data:`DEFAULTS`), chosen from measurements on real music
(docs/results.md); a kind that could not be measured keeps the authors' choice.

A model applies ``instance`` itself when it has the option (MRNet's stem, ``instance_norm``); for
``stored`` (and ``instance`` on a model without its own) the run's model gets an :class:`InputNorm`
in front, as a submodule (its statistics are buffers, saved in every checkpoint) called before the
model's own ``forward``.

>>> import torch
>>> norm = InputNorm("stored", mean=torch.full((1, 1, 2), 3.0), std=torch.full((1, 1, 2), 2.0))
>>> norm(torch.full((1, 1, 1, 4, 2), 5.0))[0, 0, 0, 0].tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from mrnet.core.errors import UserError
from mrnet.core.files import write_atomic
from mrnet.store import statistics
from mrnet.store.reader import FeatureStore

MODES = ("instance", "stored", "global", "none")
#: The default per feature kind. Mel: the best mean validation accuracy on the real-music benchmark
#: (docs/results.md, small preset at 30 epochs, 3 seeds: none 52.6 %, stored 51.4 %, instance 39.3 %;
#: none and stored within the seed spread).
#: WavLM: the authors' instance norm, since real WavLM weights cannot be had here to measure it.
#: The other log-Mel profiles (mel128, mel96) take Mel's default: the same kind of values, not measured separately.
DEFAULTS = {
    "mel": "none",
    "mel128": "none",
    "mel96": "none",
    "wavlm": "instance",
}  # Melon ships Mel: its stores are "mel" too
FALLBACK = "instance"  # a feature kind not listed above: the authors' choice
FILE = "normalization.json"


def default_for(feature: str, allowed: tuple[str, ...] = MODES) -> str:
    """The default mode for a feature kind, or the model's first allowed mode if it cannot take that
    (a model with its own recipe lists that recipe's mode first, and no other default applies).

    >>> default_for("mel"), default_for("wavlm"), default_for("wavlm", ("none", "stored"))
    ('none', 'instance', 'none')
    >>> default_for("mel128", ("global", "stored", "none"))   # MusicNeXt: its recipe's mode
    'global'
    """
    if "instance" not in allowed:
        return allowed[0]
    mode = DEFAULTS.get(feature, FALLBACK)
    return mode if mode in allowed else allowed[0]


class InputNorm(nn.Module):
    """What goes in front of a model: standardisation with fixed statistics, or instance norm over time.

    Input and output ``(B, channels, layers, T, dim)``; ``mean``/``std`` are ``(channels, layers, dim)``.
    """

    mean: torch.Tensor  # mode "stored": buffers (channels, layers, 1, dim)
    std: torch.Tensor

    def __init__(
        self, mode: str, *, mean: torch.Tensor | None = None, std: torch.Tensor | None = None, eps: float = 1e-5
    ):
        super().__init__()
        if mode not in ("instance", "stored"):
            raise ValueError(f"InputNorm mode {mode!r}: instance or stored")
        self.mode, self.eps = mode, eps
        if mode == "stored":
            if mean is None or std is None:
                raise ValueError("InputNorm mode 'stored' needs mean and std")
            self.register_buffer("mean", mean.detach().to(torch.float32).unsqueeze(2))  # (C, L, 1, D)
            self.register_buffer("std", std.detach().to(torch.float32).unsqueeze(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.mode == "stored":
            return (x - self.mean) / self.std
        mean = x.mean(dim=3, keepdim=True)
        return (x - mean) / (x.var(dim=3, keepdim=True, unbiased=False) + self.eps).sqrt()


def attach(model: nn.Module, norm: InputNorm) -> nn.Module:
    """Put ``norm`` in front of ``model``: a submodule (saved with its weights) run before every forward."""
    model.input_norm = norm
    model.register_forward_pre_hook(lambda module, args: (module.input_norm(args[0]), *args[1:]))
    return model


# --- a run's normalisation: computed from its store, recorded in its folder --------------------------


def for_run(mode: str, store: FeatureStore, train: pl.DataFrame, layer_positions: list[int]) -> dict:
    """The record of one run's normalisation: the mode, and for ``stored`` the statistics of its training
    tracks ``train`` over the layers it reads (``layer_positions`` in the store)."""
    if mode not in ("stored", "global"):
        return {"mode": mode}
    groups = store.statistics()
    fix = f"Compute them with: mrnet-store stats {store.location.url}  (or train with --normalize instance or none)"
    if groups is None:
        raise UserError(
            f"--normalize stored: {store.location.url} has no feature statistics (it was extracted before they existed, "
            f"or its labels or splits changed since). {fix}"
        )
    try:
        sums, used = statistics.training_part(groups, train)
    except ValueError as err:
        raise UserError(
            f"--normalize stored: the statistics of {store.location.url} do not cover this run's training tracks ({err}). {fix}"
        ) from err
    sums = sums if mode == "stored" else sums.pooled()
    mean, std = sums.mean_std()
    return {
        "mode": mode,
        "source": "the store's feature statistics over this run's training tracks",
        "groups": used,
        "tracks": train.height,
        "frames": sums.count,
        "layers": [store.provenance.layers[i] for i in layer_positions],
        "mean": mean[:, layer_positions].tolist(),
        "std": std[:, layer_positions].tolist(),
    }


def module(record: dict) -> InputNorm:
    """The :class:`InputNorm` a ``stored`` or ``global`` record describes (``global``: the same value for every feature)."""
    return InputNorm(
        "stored", mean=torch.tensor(np.asarray(record["mean"])), std=torch.tensor(np.asarray(record["std"]))
    )


def write(run_dir: Path, record: dict) -> None:
    write_atomic(Path(run_dir) / FILE, (json.dumps(record) + "\n").encode())


def read(run_dir: Path, mode: str) -> dict:
    """The record a run wrote; a run from before normalisation was a choice has none and used ``mode``."""
    path = Path(run_dir) / FILE
    if not path.exists():
        if mode in ("stored", "global"):
            raise UserError(
                f"{path} is missing: this run normalises with stored statistics and they are not in its folder. "
                "Restore the file, or train again."
            )
        return {"mode": mode}
    return json.loads(path.read_text())
