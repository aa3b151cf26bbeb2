"""The one exception type a user sees without a traceback, and the decorator that shows it.

>>> try:
...     raise UserError("--root /nope does not exist: pass the folder that holds your copy of gtzan")
... except UserError as err:
...     print(f"error: {err}")
error: --root /nope does not exist: pass the folder that holds your copy of gtzan
"""

from __future__ import annotations

import functools


class UserError(Exception):
    """Bad input a user can fix: the message names the file, option or store, and the fix.

    The command-line tools print it in red and exit with status 2; library callers catch it like any
    other exception.
    """


def report_user_errors(command):
    """Decorate a Typer command: a ``UserError`` prints as one red line on stderr and exits with 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import typer
        from rich.console import Console

        try:
            return command(*args, **kwargs)
        except UserError as err:
            Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {err}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper
