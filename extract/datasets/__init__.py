"""Dataset readers: a dataset as it ships -> a validated tracks manifest and genre table (a :class:`Scan`).

``scan(name, root)`` is the one entry point. It checks the options against the reader's declaration
(:mod:`.registry`: each reader file registers its ``read(root, options)`` with ``@reader``), calls
it, and applies split or fold lists a user brings. The reader finds the dataset's published layout
under ``root`` (raising :class:`~mrnet.core.errors.UserError` at once, naming what was expected
where, when it is not there), lists every track with its genre, artist and split or fold, and marks
tracks whose file is missing as ``failed``. Nothing is decoded: extraction fills duration, sample
rate, channels, frames and checksum later. Adding a dataset is one new reader file plus its import
below.

=========== ================================================== ========= ==============================
name        layout under ROOT                                  labeling  split
=========== ================================================== ========= ==============================
gtzan       genres/<g>/<g>.000NN.au or genres_original/...wav  genre     seeded stratified k-fold
fma_small   fma_metadata/tracks.csv, fma_small/000/000002.mp3  top, all  official train/valid/test
fma_medium  fma_metadata/tracks.csv, fma_medium/...            top, all  official train/valid/test
fma_large   fma_metadata/tracks.csv, fma_large/...             top, all  official train/valid/test
melon       song_meta.json, arena_mel/<id // 1000>/<id>.npy    major     k-fold grouped by artist
mtat        annotations_final.csv, 0/ ... f/*.mp3              top50     folders 0-b train, c valid, d-f test (tags)
folder      <genre>/<file>, or any files and a --labels table  genre     the table's, else k-fold
demo        generated: 4 genres x 30 tracks x 8 s              genre     train/valid/test 60/20/20
hf          save_to_disk folder, Parquet files, or a hub name  COLUMN    its train/validation/test, else k-fold
=========== ================================================== ========= ==============================

See docs/datasets.md for each layout, the labelings, and known bad files.

>>> import tempfile; root = Path(tempfile.mkdtemp())
>>> for g in ("rock", "jazz"): (root / g).mkdir(); (root / g / "a.wav").touch()
>>> s = scan("folder", root, folds=2)
>>> s.tracks.select("track_id", "genre", "label", "fold").sort("track_id").rows()
[('jazz/a', 'jazz', 0, 0), ('rock/a', 'rock', 1, 1)]
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mrnet.core.errors import UserError

# each file registers its reader as it is imported; this order is --help's, so the import sorter leaves it
# isort: off
from . import gtzan, fma, melon, mtat, folder, demo, hf  # noqa: F401

# isort: on
from .base import AUDIO_SUFFIXES, Scan, finish, make_scan
from .folds import apply_fold_files, apply_split_files, stratified_group_folds
from .registry import READERS, Reader, ReaderOptions, reader

DATASET_NAMES = tuple(READERS)
#: Labelings each dataset supports; the first is the default.
LABELINGS = {name: r.labelings for name, r in READERS.items()}

__all__ = [
    "AUDIO_SUFFIXES",
    "DATASET_NAMES",
    "LABELINGS",
    "READERS",
    "Reader",
    "ReaderOptions",
    "Scan",
    "default_features",
    "reader",
    "scan",
    "stratified_group_folds",
]


def default_features(name: str) -> str:
    """The feature kind ``name`` extracts unless told otherwise (its reader's declaration).

    >>> default_features("gtzan"), default_features("melon")
    ('wavlm', 'mel')
    """
    return READERS[name].features


def _takers(option: str) -> str:
    return " and ".join(name for name, r in READERS.items() if option in r.takes)


def _check_options(
    name: str,
    *,
    labels: Path | None,
    labeling: str | None,
    folds: int,
    split_files,
    fold_files,
    tags,
    keep_untagged: bool,
    label_column: str | None = None,
) -> str:
    """The labeling to use; UserError for an option that does not apply or does not fit."""
    if name not in READERS:
        raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    declared = READERS[name]
    if "tags" not in declared.takes and (tags is not None or keep_untagged):
        raise UserError(
            f"--tags and --keep-untagged apply to {_takers('tags')}; "
            f"{name} {'is labelled by its labels table' if 'labels' in declared.takes else 'has its own labels'}"
        )
    if "tags" in declared.takes and labeling is not None:
        raise UserError(
            f"--labeling does not apply to {name}: choose its tags with --tags N (the N most frequent) or --tags FILE"
        )
    choices = declared.labelings
    if labeling is not None and labeling not in choices:
        raise UserError(f"--labeling {labeling!r} does not apply to {name}: choose {' or '.join(choices)}")
    if labels is not None and "labels" not in declared.takes:
        raise UserError(
            f"--labels applies to the {_takers('labels')} dataset only; {name} reads its labels from its own metadata"
        )
    if label_column is not None and "label_column" not in declared.takes:
        raise UserError(f"--label-column applies to {_takers('label_column')}; {name} has its own labels")
    if folds < 2:
        raise UserError(f"--folds {folds}: k-fold cross-validation needs at least 2 folds")
    if split_files is not None and fold_files:
        raise UserError("--split-files and --fold-files both given: pass one of them")
    return labeling or choices[0]


def _root(name: str, root: Path | None) -> Path:
    makes_root = READERS[name].makes_root
    if makes_root is not None:
        return makes_root(root).resolve()
    if root is None:
        raise UserError(
            f"--root is required for {name}: pass the folder that holds your copy of the dataset (see docs/datasets.md)"
        )
    path = Path(root).expanduser().resolve()
    if not path.exists():
        raise UserError(f"--root {path} does not exist: pass the folder that holds your copy of {name}")
    if not path.is_dir():
        raise UserError(f"--root {path} is a file: pass the folder that holds your copy of {name}")
    return path


def scan(
    name: str,
    root: Path | None,
    *,
    labels: Path | None = None,
    labeling: str | None = None,
    folds: int = 10,
    seed: int = 0,
    split_files: Path | None = None,
    fold_files: list[Path] | None = None,
    tags: str | None = None,
    keep_untagged: bool = False,
    label_column: str | None = None,
) -> Scan:
    """Read dataset ``name`` under ``root`` into a :class:`Scan` (tracks manifest + genre table).

    Args:
        name: one of :data:`DATASET_NAMES`.
        root: the dataset's folder as published; ``None`` only for ``demo`` (``$MRNET_DEMO_DIR`` or
            ``~/.cache/mrnet/demo-v1``, generated on first use).
        labels: ``folder`` only: CSV or Parquet with columns path, genre (+ artist, split or fold).
        labeling: ``top`` (default) or ``all`` for FMA; the single choice elsewhere.
        folds, seed: k and seed of the stratified k-fold where the dataset has no official split.
        split_files: a folder with train.txt, valid.txt, test.txt (one track per line) that replaces
            the split; tracks not listed are dropped.
        fold_files: list files, file i lists fold i; replaces the folds; unlisted tracks are dropped.
        tags, keep_untagged: ``mtat`` only: the tags kept (``"50"``: the 50 most frequent, or a file of
            tag names) and whether clips with none of them stay.
    """
    labeling = _check_options(
        name,
        labels=labels,
        labeling=labeling,
        folds=folds,
        split_files=split_files,
        fold_files=fold_files,
        tags=tags,
        keep_untagged=keep_untagged,
        label_column=label_column,
    )
    path = _root(name, root)
    options = ReaderOptions(
        name,
        labeling,
        folds=folds,
        seed=seed,
        labels=None if labels is None else Path(labels).expanduser().resolve(),
        tags=tags,
        keep_untagged=keep_untagged,
        label_column=label_column,
    )
    result = READERS[name].read(path, options)
    origin = result.origin
    if result.source != READERS[name].ships:  # the engine is chosen by what the scan says it lists
        raise ValueError(
            f"the {name} reader is declared to ship {READERS[name].ships!r} but its scan lists {result.source!r}"
        )
    if split_files is not None or fold_files:
        if split_files is not None:
            tracks, notes = apply_split_files(result.tracks, Path(split_files).expanduser())
        else:
            tracks, notes = apply_fold_files(result.tracks, [Path(p).expanduser() for p in fold_files or ()])
        result = make_scan(
            name,
            path,
            source=result.source,
            labeling=result.labeling,
            tracks=tracks,
            notes=[*result.notes, *notes],
            task=result.task,
        )
    return finish(replace(result, origin=origin))  # the lists above make a new scan of the same dataset
