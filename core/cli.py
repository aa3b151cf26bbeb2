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
