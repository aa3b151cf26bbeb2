"""What the four command lines share: a help screen without type labels on flags, and choices from the
tuples the library declares.

>>> Codec = choices("Codec", ("none", "zstd"))
>>> Codec("zstd").value, [c.value for c in Codec]
('zstd', ['none', 'zstd'])
"""

from __future__ import annotations

from enum import Enum
from typing import Any, cast

import typer
from typer.core import TyperCommand

from mrnet.core.errors import UserError
from mrnet.core.machine import cuda_devices


class Command(TyperCommand):
    """A Typer command whose ``--help`` line, like every flag's, carries no ``<bool>`` type label."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


def choices(name: str, values) -> type[Enum]:
    """A ``str`` Enum of option values, from the tuple the library declares them in (one source of truth)."""
    return cast(type[Enum], Enum(name, {v: v for v in values}, type=str))  # the functional API makes a class


def flag(*names: str, help: str, panel: str, **kw: Any):
    """A boolean option shown as a bare flag (no ``<bool>``, no default of ``no-...``)."""
    return typer.Option(*names, help=help, metavar="", show_default=False, rich_help_panel=panel, **kw)


def parse_ints(text: str | None, option: str, *, all_is_none: bool = False) -> tuple[int, ...] | None:
    """``"0,1"`` or ``"0-12"`` or ``"0-3,8"`` -> a sorted tuple of distinct ints; ``None`` for nothing.
    ``all`` is ``None`` too where the option means every one by it (``--layers``, ``all_is_none``);
    elsewhere it is refused by name rather than read as nothing. Parses ``mrnet-extract --layers`` and
    ``mrnet-train --seeds``; ``--gpus`` (both commands) goes through :func:`parse_gpus`.

    >>> parse_ints("0-3,8", "--layers"), parse_ints("1,0", "--seeds"), parse_ints(None, "--seeds")
    ((0, 1, 2, 3, 8), (0, 1), None)
    >>> parse_ints("all", "--layers", all_is_none=True) is None
    True
    >>> parse_ints("2-1", "--layers")
    Traceback (most recent call last):
    mrnet.core.errors.UserError: --layers '2-1': 2-1 is an empty range; write the smaller first: 1-2
    >>> parse_ints("all", "--seeds")
    Traceback (most recent call last):
    mrnet.core.errors.UserError: --seeds 'all': give numbers like 0,1 or ranges like 0-12
    """
    if text is None or text.strip() == "" or (all_is_none and text.strip() == "all"):
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            if hi and int(lo) > int(hi):
                raise UserError(
                    f"{option} {text!r}: {part.strip()} is an empty range; write the smaller first: {hi}-{lo}"
                )
            out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise UserError(f"{option} {text!r}: give numbers like 0,1 or ranges like 0-12") from None
    return tuple(sorted(set(out)))


def parse_gpus(text: str | None) -> tuple[int, ...]:
    """``--gpus`` of both commands: GPU ids (``0,1``, ``0-3``), or ``all``, every CUDA device PyTorch sees
    here; ``()`` when not given. ``all`` on a machine without one is refused, never read as "no GPUs"
    (which would run on the CPU without a word).

    >>> parse_gpus("1,0"), parse_gpus(None)
    ((0, 1), ())
    """
    if text is not None and text.strip().lower() == "all":
        count = cuda_devices()
        if not count:
            raise UserError(
                "--gpus all: this machine has no CUDA device that PyTorch can use. "
                "Use --workers N for N processes on the CPU, or leave --gpus out."
            )
        return tuple(range(count))
    return parse_ints(text, "--gpus") or ()
