"""The range of every numeric option of ``mrnet-train``, declared once.

``TrainConfig.check`` holds every config to it (the command line, a preset, a run's ``config.json``), so
NaN, infinity or a value no run can finish with never reaches training; ``mrnet-train --help`` shows
each range beside its option. A value must be a finite number inside its range.

>>> RANGES["lr"].text(), RANGES["epochs"].text()
('0 < x <= 10', '1 <= x <= 100000')
>>> RANGES["lr"].problem("lr", float("nan"))
'--lr nan: give a finite number, 0 < x <= 10'
>>> RANGES["seed"].problem("seed", 2**70)
'--seed 1180591620717411303424: give a whole number, 0 <= x <= 4294967295'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import cast


@dataclass(frozen=True)
class Range:
    """``low <= x <= high`` (``open_low``: ``low < x``); ``whole``: an integer."""

    low: float
    high: float
    open_low: bool = False
    whole: bool = False

    def text(self) -> str:
        low = f"{self.low:g}" if not self.whole else str(int(self.low))
        high = f"{self.high:g}" if not self.whole else str(int(self.high))
        return f"{low} {'<' if self.open_low else '<='} x <= {high}"

    def problem(self, name: str, value: object, option: str | None = None) -> str | None:
        """What is wrong with ``value`` for option ``name`` (None: nothing); ``option``: how the message names it
        (default ``--name``)."""
        option = option or "--" + name.replace("_", "-")
        kind = "whole number" if self.whole else "finite number"
        if isinstance(value, bool) or not isinstance(value, Integral if self.whole else Real):
            return f"{option} {value!r}: give a {kind}, {self.text()}"
        number = cast(float, value)  # a Real: numbers.Real declares no comparisons, so a checker cannot see them
        if (
            not math.isfinite(number)
            or (number <= self.low if self.open_low else number < self.low)
            or number > self.high
        ):
            return f"{option} {value}: give a {kind}, {self.text()}"
        return None


def whole(low: int, high: int) -> Range:
    return Range(low, high, whole=True)


#: Each numeric field of ``TrainConfig`` (and of MRNet's options, given as --width ...) with its range.
#: Upper bounds are far past any sensible run, and keep out values that would only hang or exhaust a
#: machine (a billion masks per crop, a 2^70 seed no generator takes).
RANGES: dict[str, Range] = {
    "epochs": whole(1, 100_000),
    "batch_size": whole(1, 65_536),
    "crop_seconds": Range(0, 3_600, open_low=True),  # and at most the longest training track (checked on the store)
    "lr": Range(0, 10, open_low=True),
    "lr_min": Range(0, 10),
    "weight_decay": Range(0, 10),
    "noise_p": Range(0, 1),
    "time_masks": whole(0, 100),
    "time_mask_frac": Range(0, 1),
    "feature_masks": whole(0, 100),
    "feature_mask_frac": Range(0, 1),
    "time_flip": Range(0, 1),
    "patience": whole(0, 100_000),
    "min_delta": Range(0, 1_000),
    "eval_every": whole(1, 100_000),
    "eval_batch_size": whole(1, 65_536),
    "num_workers": whole(0, 256),
    "workers": whole(1, 1_024),
    "seed": whole(0, 2**32 - 1),  # NumPy's legacy seeding takes 32 bits
    "fold": whole(0, 1_000),
    "schedule_epochs": whole(1, 100_000),
}
#: The model options the command line names (MRNet's --width, --embed-dim, --dropout), checked when given.
MODEL_RANGES: dict[str, Range] = {"width": whole(1, 65_536), "embed_dim": whole(1, 65_536), "dropout": Range(0, 1)}


def problems(values: dict[str, object], model_options: dict[str, object]) -> list[str]:
    """Every out-of-range value among ``values`` (None: unset, allowed), the waveform augmentation of
    ``values["wave_augment"]`` (each an augmentation option, in that option's range, None not allowed) and
    ``model_options``; any other numeric model option (``--model-option KEY=VALUE``) must at least be finite.

    >>> problems({"wave_augment": {"noise_p": float("nan"), "time_masks": 2}}, {})
    ['wave_augment.noise_p nan: give a finite number, 0 <= x <= 1']
    """
    found = [p for name, r in RANGES.items() if values.get(name) is not None and (p := r.problem(name, values[name]))]
    wave = values.get("wave_augment")
    if isinstance(wave, dict):  # set by a preset or config.json, never on the command line
        found += [
            p
            for name, value in wave.items()
            if name in RANGES and (p := RANGES[name].problem(name, value, option=f"wave_augment.{name}"))
        ]
    for name, value in model_options.items():
        if name in MODEL_RANGES:
            problem = MODEL_RANGES[name].problem(name, value)
        elif isinstance(value, float) and not math.isfinite(value):
            problem = f"--model-option {name}={value}: give a finite number"
        else:
            problem = None
        if problem:
            found.append(problem)
    return found


def help_range(name: str) -> str:
    """The range of option ``name`` as ``--help`` shows it: ``[range: 0 <= x <= 1]``."""
    r = RANGES.get(name) or MODEL_RANGES[name]
    return rf" \[range: {r.text()}]"
