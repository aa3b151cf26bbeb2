"""Any folder of audio files: labelled by a table (``--labels``) or by one sub-folder per genre.

```
ROOT/<genre>/<any/depth/>NAME.{mp3,ogg,flac,wav,au}     without --labels: genre = first folder
LABELS.csv | LABELS.parquet                               with --labels: columns path, and genre or tags
                                                          (+ optional artist, and split or fold,
                                                          + any columns of your own: title, album, ...)
```

A labels table's other columns (``title``, ``album``, ...) are kept in the tracks manifest, as text,
each as ``meta_<name>`` (``mrnet.manifests.schema.EXTRA_PREFIX``); one named like a manifest column
(``tags`` beside ``genre``, ``key``, ``status``, ...) is refused, since it would look like what it is not.

A table with ``tags`` instead of ``genre`` makes a multi-label store: each track has any number of
tags, separated by ``;`` in a CSV (``guitar;slow``) or a list column in Parquet; a track with none
is kept as a track with no positive tag.

Paths in the table are relative to ``ROOT``. Track ids are paths without extension (``rock/song``).
Splits come from the table's ``split`` (train / valid / test) or ``fold`` (0..k-1) column when it has
one; otherwise tracks get a seeded stratified k-fold, grouped by ``artist`` when the table gives it.

>>> clean_path(" ./rock\\\\a.wav "), clean_path("rock/./x.wav"), clean_path("rock//x.wav"), clean_path("rock/../x.wav")
('rock/a.wav', 'rock/x.wav', 'rock/x.wav', 'rock/../x.wav')
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl

from mrnet.core.errors import UserError
from mrnet.manifests.schema import EXTRA_PREFIX, TRACKS

from .base import (
    AUDIO_SUFFIXES,
    Scan,
    is_audio,
    make_scan,
    mark_missing,
    outside_root,
    require_file,
    tracks_frame,
    walk_files,
)
from .folds import assign_folds
from .registry import ReaderOptions, reader

REQUIRED = ("path", "genre")  # or path and tags, for a multi-label store
OPTIONAL = ("artist", "split", "fold")
SPLIT_NAMES = {"train": "train", "valid": "valid", "test": "test", "training": "train", "validation": "valid"}


def clean_path(path: str) -> str:
    """A table path in its one normal form: trimmed, ``\\`` as ``/``, no empty or ``.`` segment (``..``
    is kept, for the containment check to refuse)."""
    return pl.select(_normal(pl.lit(path))).item()


def _normal(path: pl.Expr) -> pl.Expr:
    """:func:`clean_path` in Polars: one file named two ways (``rock/./x.wav``, ``rock//x.wav``) is one path."""
    slashes = path.str.strip_chars().str.replace_all("\\", "/", literal=True).str.replace_all("/+", "/")
    return slashes.str.replace_all(r"(^|/)(\./)+", "$1").str.replace(r"/\.$", "")


def read_labels(path: Path) -> pl.DataFrame:
    """The labels table (CSV or Parquet), checked: path and genre present and filled; any column of the
    user's own kept as ``meta_<name>`` (text)."""
    require_file(
        path, "--labels must be a CSV or Parquet file with columns path and genre (optional artist, split, fold)"
    )
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pl.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".tsv"):
            table = pl.read_csv(path, infer_schema=False, separator="\t" if path.suffix.lower() == ".tsv" else ",")
        else:
            raise UserError(f"--labels {path}: unknown table format {path.suffix!r}; use .csv or .parquet")
    except pl.exceptions.PolarsError as err:
        raise UserError(f"--labels {path}: cannot read it as a table: {err}") from err
    required = ("path", "tags") if "tags" in table.columns and "genre" not in table.columns else REQUIRED
    missing = [c for c in required if c not in table.columns]
    own = [c for c in table.columns if c not in required + OPTIONAL]
    clash = [c for c in own if c in TRACKS]
    if missing or clash:
        raise UserError(
            f"--labels {path}: columns must be path and genre (or tags, for several labels per track), optionally artist "
            "and split or fold, and any of your own; "
            + (f"missing {missing}" if missing else f"{clash} would stand for a manifest column: rename them")
        )
    table = table.rename({c: EXTRA_PREFIX + c for c in own})
    if "split" in table.columns and "fold" in table.columns:
        raise UserError(f"--labels {path}: has both split and fold columns; keep one")
    if table.height == 0:
        raise UserError(f"--labels {path}: the table has no rows")
    for column in ("path", "genre") if "genre" in table.columns else ("path",):
        empty = table.with_row_index("row").filter(
            pl.col(column).is_null() | (pl.col(column).cast(pl.String).str.strip_chars() == "")
        )
        if empty.height:
            raise UserError(
                f"--labels {path}: {empty.height} rows have no {column} (first: data row {empty['row'][0] + 1})"
            )
    if "tags" in table.columns and table.schema["tags"] != pl.List(pl.String):
        table = table.with_columns(tags=pl.col("tags").cast(pl.String).fill_null("").str.split(";"))
    if "tags" in table.columns:
        table = table.with_columns(
            tags=pl.col("tags").list.eval(pl.element().str.strip_chars().filter(pl.element() != ""))
        )
    return table.with_columns(pl.col(c).cast(pl.String) for c in table.columns if c not in ("fold", "tags"))


def _from_table(table: pl.DataFrame, where: Path) -> pl.DataFrame:
    """Reader columns from a checked labels table: clean paths, ids, genre, artist, split or fold."""
    frame = table.with_columns(
        _given=pl.col("path"),
        path=_normal(pl.col("path")),
        **({"genre": pl.col("genre").str.strip_chars()} if "genre" in table.columns else {}),
    )
    absolute = frame.filter(pl.col("path").str.starts_with("/") | pl.col("path").str.contains(r"^[A-Za-z]:"))
    if absolute.height:
        raise UserError(
            f"--labels {where}: paths must be relative to --root, e.g. rock/song.mp3; found {absolute['path'][0]!r}"
        )
    dup = frame.with_row_index("row").filter(pl.col("path").is_duplicated()).sort("path", "row")
    if dup.height:
        a, b = dup.head(2).iter_rows(named=True)
        raise UserError(
            f"--labels {where}: {dup['path'].n_unique()} files are listed more than once, e.g. {a['path']!r} as "
            f"{a['_given']!r} (data row {a['row'] + 1}) and {b['_given']!r} (data row {b['row'] + 1}); list each file once"
        )
    if "split" in frame.columns:
        split = frame["split"].str.strip_chars().str.to_lowercase().replace_strict(SPLIT_NAMES, default=None)
        bad = frame.filter(split.is_null())
        if bad.height:
            raise UserError(
                f"--labels {where}: split must be train, valid or test; found {bad['split'][0]!r} in {bad.height} rows"
            )
        frame = frame.with_columns(split=split)
    if "fold" in frame.columns:
        fold = frame["fold"].cast(pl.String).str.strip_chars().cast(pl.Int16, strict=False)
        bad = frame.filter(fold.is_null() | (fold < 0))
        if bad.height:
            raise UserError(
                f"--labels {where}: fold must be an integer 0..k-1; found {bad['fold'][0]!r} in {bad.height} rows"
            )
        frame = frame.with_columns(fold=fold)
    return frame.drop("_given").with_columns(track_id=pl.col("path").str.replace(r"\.[^./]+$", ""))


def _from_folders(root: Path) -> tuple[pl.DataFrame, list[str]]:
    """Reader columns from ``root/<genre>/...`` audio files."""
    listed, walk_notes, resolved = walk_files(root)
    files = [p for p in listed if is_audio(p)]
    others = Counter(Path(p).suffix.lower() or "(none)" for p in listed if not is_audio(p))
    if others:
        kinds = ", ".join(f"{ext} {n}" for ext, n in others.most_common())
        walk_notes.append(
            f"{sum(others.values())} files are not audio mrnet reads ({', '.join(AUDIO_SUFFIXES)}) and are ignored: {kinds}"
        )
    nested = [p for p in files if "/" in p]
    if not nested:
        raise UserError(
            f"no audio files in genre folders under {root}: expected ROOT/<genre>/<name>{{{','.join(AUDIO_SUFFIXES)}}} "
            "(one sub-folder per genre), or pass --labels with a CSV of path,genre"
        )
    notes = (
        [f"{len(files) - len(nested)} audio files directly in {root} (not in a genre folder) are ignored"]
        if len(nested) < len(files)
        else []
    )
    notes += walk_notes
    resolved = {p: resolved[p] for p in nested if p in resolved}
    if resolved:
        notes.append(
            f"{len(resolved)} audio files are read through links that lead out of {root}; the manifest records the file each "
            f"link leads to, e.g. {next(iter(resolved.values()))}"
        )
    frame = pl.DataFrame({"listed": nested}).select(  # a file reached through a link out of the root: read where it is
        path=pl.col("listed").replace(resolved),
        genre=pl.col("listed").str.split("/").list.first(),
        track_id=pl.col("listed").str.replace(r"\.[^./]+$", ""),
    )
    return frame, notes


@reader("folder", takes=("labels",))
def read(root: Path, options: ReaderOptions) -> Scan:
    """Scan a folder of audio, labelled by ``options.labels`` or by its genre sub-folders."""
    labels = options.labels
    notes: list[str] = []
    if labels is not None:
        frame = _from_table(read_labels(labels), labels).sort("path")
        kept = [c for c in frame.columns if c.startswith(EXTRA_PREFIX)]
        if kept:
            notes.append(
                f"--labels {labels}: kept {', '.join(kept)} in the tracks manifest (your own columns, as text)"
            )
        leaving = outside_root(root, frame["path"])
        if leaving:
            raise UserError(
                f"--labels {labels}: {len(leaving)} paths lead outside --root {root}, e.g. {leaving[0]!r}; "
                "every path must name a file inside the dataset root (move the files in, or pass the folder that holds them all)"
            )
    else:
        frame, notes = _from_folders(root)
    tracks = tracks_frame(frame)
    if "split" not in frame.columns and "fold" not in frame.columns:
        tracks = assign_folds(tracks, k=options.folds, seed=options.seed, group="artist")
    tracks = mark_missing(tracks, root)
    task = "multi-label" if "tags" in frame.columns else "single-label"
    odd = ~tracks["path"].map_elements(is_audio, return_dtype=pl.Boolean)
    if labels is not None and odd.any():  # (a genre folder's files are audio by name; a link's target need not be)
        notes.append(
            f"{odd.sum()} files have an extension other than {', '.join(AUDIO_SUFFIXES)} and are marked failed"
        )
        tracks = tracks.with_columns(
            status=pl.when(pl.lit(odd)).then(pl.lit("failed")).otherwise(pl.col("status")),
            error=pl.when(pl.lit(odd))
            .then(pl.lit("unsupported audio format: ") + pl.col("path"))
            .otherwise(pl.col("error")),
        )
    return make_scan(
        options.name,
        root,
        source="audio",
        labeling="tags" if task == "multi-label" else "genre",
        tracks=tracks,
        notes=notes,
        task=task,
    )
