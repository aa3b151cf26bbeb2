"""The one exception type a user sees without a traceback, and the decorator that shows it.

>>> try:
...     raise UserError("--root /nope does not exist: pass the folder that holds your copy of gtzan")
... except UserError as err:
...     print(f"error: {err}")
error: --root /nope does not exist: pass the folder that holds your copy of gtzan
>>> print(as_user_error(PermissionError(13, "Permission denied", "/data/out/zarr.json")))
cannot write /data/out/zarr.json: Permission denied. Choose a folder you can write to (--out, --manifests-dir, a run's --out), or fix its permissions; everything finished before this is kept.
"""

from __future__ import annotations

import errno
import functools


class UserError(Exception):
    """Bad input a user can fix: the message names the file, option or store, and the fix.

    The command-line tools print it in red and exit with status 2; library callers catch it like any
    other exception.
    """


def as_user_error(err: BaseException) -> UserError | None:
    """A ``UserError`` for a condition of the machine a user can fix (no permission, a full disk, no
    credentials or no route to object storage); ``None`` for anything else, which is a bug and keeps
    its traceback."""
    if isinstance(err, UserError):
        return err
    where = getattr(err, "filename", None) or "a file"
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(
            f"cannot write {where}: {err.strerror or err}. Choose a folder you can write to (--out, --manifests-dir, "
            "a run's --out), or fix its permissions; everything finished before this is kept."
        )
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(
            f"no space left writing {where}: everything finished before this is kept. "
            "Free some space, then run the same command again: it resumes."
        )
    if from_object_storage(err):
        return UserError(
            f"object storage refused or could not be reached: {type(err).__name__}: {err}. Check the URL, the "
            "endpoint and the credentials (AWS_* variables, ~/.aws, --storage-options or $MRNET_STORAGE_OPTIONS; "
            "see docs/sharing.md)."
        )
    return None


def from_object_storage(err: BaseException) -> bool:
    """An error of an S3 client: botocore's or aiobotocore's own, or the ``OSError`` naming the object that
    ``store/objects.py`` raises from obstore's."""
    clients = ("botocore", "aiobotocore", "obstore")
    cause = err.__cause__ if isinstance(err, OSError) else None
    return type(err).__module__.startswith(clients) or type(cause).__module__.startswith(clients)


def report_user_errors(command):
    """Decorate a Typer command: a ``UserError`` (or a condition ``as_user_error`` names) prints as one
    red line on stderr and exits with 2; Ctrl-C says that running the command again resumes and exits
    with 130 (Typer would exit silently); anything else keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import typer
        from rich.console import Console
        from rich.text import Text

        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            Console(stderr=True).print(
                "[yellow]interrupted:[/] what finished is kept; run the same command again to resume."
            )
            raise typer.Exit(130) from None
        except Exception as err:  # noqa: BLE001 - re-raised below unless a user can fix it
            user = as_user_error(err)
            if user is None:
                raise
            Console(stderr=True, soft_wrap=True).print(Text.assemble(("error: ", "red"), str(user)), highlight=False)
            raise typer.Exit(2) from None

    return wrapper
