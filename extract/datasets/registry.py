"""The dataset readers' registry: each reader file declares itself once, with ``@reader(...)``.

A reader is one function, ``read(root: Path, options: ReaderOptions) -> Scan``, and its declaration
says what a user may ask of it: the names it answers to, what it ships (``"audio"``, or the
``engines.SHIPPED`` name of the arrays it ships), the feature kind extracted when ``--features`` is
not given, its labelings (the first is the default), and which reader-specific options it takes
(``labels``, ``tags``). ``scan`` checks the options against the declaration before it calls ``read``.

>>> @reader("example", labelings=("genre", "mood"))
... def read(root, options): ...
>>> READERS["example"].labelings, READERS["example"].ships, READERS["example"].features
(('genre', 'mood'), 'audio', 'wavlm')
>>> del READERS["example"]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import Scan

#: Options only some readers take: the folder reader's labels table, MagnaTagATune's tag choice, the hf reader's label column.
SPECIFIC = ("labels", "tags", "label_column")


@dataclass(frozen=True)
class ReaderOptions:
    """What a user chose about reading a dataset; each reader reads the fields that apply to it."""

    name: str  # the dataset name asked for, e.g. "fma_small" (one reader may answer to several)
    labeling: str  # one of the reader's labelings (its default when none was asked for)
    folds: int = 10  # k of the seeded k-fold, where the dataset has no official split
    seed: int = 0
    labels: Path | None = None  # "labels" readers: the labels table (resolved), or None
    tags: str | None = None  # "tags" readers: "N" (the N most frequent) or a file of tag names
    keep_untagged: bool = False  # "tags" readers: keep clips with none of the kept tags
    label_column: str | None = None  # "label_column" readers (hf): the column that holds the labels


Read = Callable[[Path, ReaderOptions], Scan]


@dataclass(frozen=True)
class Reader:
    """One registered reader: its ``read`` and what it declares about itself."""

    name: str
    read: Read
    ships: str = "audio"  # Scan.source of what it lists: "audio", or the engines.SHIPPED name
    features: str = "wavlm"  # the --features kind extracted unless told otherwise
    labelings: tuple[str, ...] = ("genre",)
    takes: tuple[str, ...] = ()  # which of SPECIFIC it takes
    makes_root: Callable[[Path | None], Path] | None = None  # a generated dataset: its root from --root (or None)


#: Every reader, by dataset name, in the order the readers were imported (the order ``--help`` lists).
READERS: dict[str, Reader] = {}


def reader(
    *names: str,
    ships: str = "audio",
    features: str = "wavlm",
    labelings: tuple[str, ...] = ("genre",),
    takes: tuple[str, ...] = (),
    makes_root: Callable[[Path | None], Path] | None = None,
) -> Callable[[Read], Read]:
    """Function decorator: register ``read`` under each of ``names`` (see :class:`Reader`)."""
    unknown = set(takes) - set(SPECIFIC)
    if unknown:
        raise ValueError(f"a reader takes only {SPECIFIC}, not {sorted(unknown)}")

    def register(read: Read) -> Read:
        for name in names:
            known = READERS.get(name)
            if known is not None and _where(known.read) != _where(read):  # the same file imported twice keeps the first
                raise ValueError(f"dataset {name!r} is registered twice ({_where(known.read)}, {_where(read)})")
            READERS.setdefault(name, Reader(name, read, ships, features, tuple(labelings), tuple(takes), makes_root))
        return read

    return register


def _where(read: Read) -> str:
    return f"{read.__module__.rsplit('.', 1)[-1]}.{read.__qualname__}"
