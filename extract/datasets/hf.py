"""Hugging Face ``datasets`` as input: ``mrnet-extract hf --root NAME_OR_PATH --label-column COLUMN``.

``--root`` is a local copy, a ``save_to_disk`` folder (``dataset_dict.json`` and one folder per
split, or one dataset's ``state.json``) or a folder of Parquet files (``to_parquet``, or the hub's
``data/train-00000-of-00001.parquet``), or a hub name (``owner/name``), whose Parquet files are
downloaded into the Hugging Face cache at the newest commit where the network allows.

- **Audio:** the dataset's one ``Audio`` column; each clip's bytes stay in the dataset's files. A
  track's path is the file that holds it and its row (``train/data-00000-of-00001.arrow#17``,
  :mod:`mrnet.extract.rows`), decoded one row at a time while extracting: nothing is loaded whole
  and nothing is copied.
- **Labels:** ``--label-column``: a ``ClassLabel`` or string column (genres, single-label), or a
  list of them (tags: a multi-label store, like MagnaTagATune's). Rows without a label are left out.
- **Splits:** ``train``, ``validation`` (or ``valid``, ``dev``), ``test`` become the store's splits;
  a dataset with one split (or none) gets the seeded stratified k-fold (``--folds``), grouped by an
  ``artist`` column when it has one.
- **Revision:** the hub commit, or the fingerprint ``datasets`` keeps in ``state.json``, or a hash of
  the Parquet files' footers; the store's provenance records it with the name
  (``extraction.dataset_source``).

>>> split_of("validation"), split_of("dev"), split_of("holdout") is None
('valid', 'valid', True)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mrnet.core.errors import UserError
from mrnet.extract import rows

from .base import Scan, make_scan, tracks_frame
from .folds import assign_folds
from .registry import ReaderOptions, reader

SPLITS = {"train": "train", "validation": "valid", "valid": "valid", "val": "valid", "dev": "valid", "test": "test"}
_LAYOUT = (
    "expected a save_to_disk folder (dataset_dict.json or state.json), a folder of Parquet files, or a hub name "
    "owner/name; see docs/datasets.md (Hugging Face datasets)"
)


def split_of(name: str) -> str | None:
    return SPLITS.get(name.lower())


def hub_root(root: Path | None) -> Path:
    """``--root`` as a folder: itself when it exists here, else the hub dataset of that name, downloaded
    (its Parquet files only) into the Hugging Face cache."""
    if root is None:
        raise UserError(
            "--root is required for hf: a save_to_disk folder, a folder of Parquet files, or a hub name owner/name"
        )
    path = Path(root).expanduser()
    if path.exists():
        return path
    name = str(root)
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise UserError(f"--root {root} does not exist here and is not a hub name owner/name: {_LAYOUT}")
    from huggingface_hub import snapshot_download

    from mrnet.extract.engines import hub

    offline = hub.offline(name)
    try:
        folder = snapshot_download(
            name, repo_type="dataset", allow_patterns=["*.parquet", "**/*.parquet"], local_files_only=offline
        )
    except Exception as err:  # noqa: BLE001 - unknown, private, unreachable
        where = (
            f"the hub ({hub.endpoint()}) cannot be reached and it is not in this machine's cache"
            if offline
            else str(err).splitlines()[0]
        )
        raise UserError(
            f"--root {name}: cannot download the hub dataset ({where}). Copy it with save_to_disk or its Parquet "
            "files on a connected machine and pass that folder."
        ) from err
    return Path(folder)


@reader("hf", labelings=("label",), takes=("label_column",), makes_root=hub_root)
def read(root: Path, options: ReaderOptions) -> Scan:
    """List a ``datasets`` dataset's rows as tracks, labelled by ``options.label_column``."""
    column = options.label_column
    if not column:
        raise UserError("hf: --label-column is required: the dataset column that holds each clip's genre (or its tags)")
    files = _files(root)
    schema = _schema(root / files[0][1])
    audio = rows.audio_column(schema)
    if audio is None:
        raise UserError(
            f"hf: {files[0][1]} has no single Audio column (its columns: {', '.join(schema.names)}); "
            "mrnet-extract hf reads datasets whose audio is an Audio feature"
        )
    from datasets import ClassLabel, Features

    features = Features.from_arrow_schema(schema)
    if column not in features:
        raise UserError(
            f"hf: --label-column {column!r} is not a column of the dataset: choose one of {', '.join(features)}"
        )
    label, multi = _label_kind(features[column], column)
    frames, notes = [], []
    for split, rel in files:
        values = _column(root / rel, [column] + (["artist"] if "artist" in features else []))
        names = values.column(column).to_pylist()
        if isinstance(label, ClassLabel):
            names = [
                None if v is None else ([label.int2str(x) for x in v] if multi else label.int2str(v)) for v in names
            ]
        frames.append(
            pl.DataFrame(
                {
                    "split_name": [split] * len(names),
                    "path": [rows.row_path(rel, i) for i in range(len(names))],
                    "labels": pl.Series(names, dtype=pl.List(pl.String) if multi else pl.String),
                    "artist": pl.Series(
                        values.column("artist").to_pylist() if "artist" in features else [None] * len(names),
                        dtype=pl.String,
                    ),
                }
            )
        )
    table = pl.concat(frames).with_columns(
        track_id=pl.format(
            "{}-{}",
            pl.col("split_name").fill_null("all"),
            pl.int_range(pl.len()).over("split_name").cast(pl.String).str.zfill(6),
        )
    )
    unlabelled = table.filter(
        pl.col("labels").is_null() | (pl.col("labels").list.len() == 0 if multi else pl.lit(False))
    ).height
    if unlabelled:
        table = table.filter(
            pl.col("labels").is_not_null() & (pl.col("labels").list.len() > 0 if multi else pl.lit(True))
        )
        notes.append(f"{unlabelled} rows have no {column} and are left out")
    split_names = sorted({s for s in table["split_name"].to_list() if s is not None})
    named = {s: split_of(s) for s in split_names}
    if len(split_names) > 1:
        unknown = [s for s, mapped in named.items() if mapped is None]
        if unknown:
            raise UserError(
                f"hf: splits {unknown} are not train, validation or test; the store's splits are train/valid/test. "
                "Save the dataset with those split names (DatasetDict), or as one split to get k folds."
            )
        table = table.with_columns(split=pl.col("split_name").replace_strict(named, return_dtype=pl.String))
    columns = {"track_id": "track_id", "path": "path", "artist": "artist"} | (
        {"tags": "labels"} if multi else {"genre": "labels"}
    )
    tracks = tracks_frame(
        table.select(
            **{k: pl.col(v) for k, v in columns.items()}, **({"split": "split"} if len(split_names) > 1 else {})
        )
    )
    if len(split_names) <= 1:
        tracks = assign_folds(tracks, k=options.folds, seed=options.seed)
        notes.append(
            f"the dataset has {'one split' if split_names else 'no splits'}: seeded stratified {options.folds}-fold"
        )
    if multi:
        tags = label.names if isinstance(label, ClassLabel) else None
        scan = make_scan(
            "hf", root, source="audio", labeling=column, tracks=tracks, notes=notes, task="multi-label", tags=tags
        )
    else:
        scan = make_scan("hf", root, source="audio", labeling=column, tracks=tracks, notes=notes)
    return replace(scan, origin={"name": _name(root), "revision": _revision(root, files)})


def _files(root: Path) -> list[tuple[str | None, str]]:
    """``(split name or None, file relative to root)`` of every data file, in the dataset's order."""
    if (root / "dataset_dict.json").is_file():
        splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
        outside = [
            s
            for s in splits
            if "/" in s or s.startswith(".") or not (root / s).resolve().is_relative_to(root.resolve())
        ]
        if outside:  # a split is a folder of the dataset: no path leaves --root
            raise UserError(
                f"hf: {root / 'dataset_dict.json'} names splits that are not folders inside {root}: {outside[:3]}"
            )
        return [(s, f"{s}/{name}") for s in splits for name in _state_files(root / s)]
    if (root / "state.json").is_file():
        return [(None, name) for name in _state_files(root)]
    inside = (
        root.parent.parent if root.parent.name == "snapshots" else root
    ).resolve()  # a hub snapshot links into its blobs
    parquet = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*.parquet") if p.resolve().is_relative_to(inside)
    )
    if not parquet:
        raise UserError(f"hf: no dataset at {root}: {_LAYOUT}")
    return [(_parquet_split(rel), rel) for rel in parquet]


def _state_files(folder: Path) -> list[str]:
    state = json.loads((folder / "state.json").read_text())
    names = [entry["filename"] for entry in state.get("_data_files", [])]
    bad = [n for n in names if "/" in n or n.startswith(".")]
    if bad:
        raise UserError(f"hf: {folder / 'state.json'} names data files outside its folder: {bad[:3]}")
    return names


def _parquet_split(rel: str) -> str | None:
    """The split a Parquet file belongs to, from the hub's naming: ``data/train-00000-of-00001.parquet``,
    ``default/train/0000.parquet``, ``test.parquet``; ``None`` when its name says none."""
    parts = rel.split("/")
    stem = parts[-1].removesuffix(".parquet").split("-")[0]
    for candidate in (stem, *reversed(parts[:-1])):
        if split_of(candidate) is not None:
            return candidate
    return None


def _schema(file: Path) -> pa.Schema:
    if file.suffix == ".arrow":
        with pa.memory_map(str(file)) as source:
            return pa.ipc.open_stream(source).schema
    return pq.read_schema(file)


def _column(file: Path, columns: list[str]) -> pa.Table:
    """Only the label (and artist) columns of a file: the audio is not read."""
    if file.suffix == ".arrow":
        return pa.ipc.open_stream(pa.memory_map(str(file))).read_all().select(columns)
    return pq.read_table(file, columns=columns)


def _label_kind(feature, column: str):
    """``(the label feature, whether it is a list of labels)``; ``UserError`` for a column of another kind."""
    from datasets import ClassLabel, List, Sequence, Value

    inner = (
        feature.feature if isinstance(feature, (List, Sequence)) else feature[0] if isinstance(feature, list) else None
    )
    multi = inner is not None
    kind = inner if multi else feature
    if isinstance(kind, ClassLabel) or (isinstance(kind, Value) and kind.dtype in ("string", "large_string")):
        return kind, multi
    raise UserError(
        f"hf: --label-column {column!r} holds {feature}; it must be a ClassLabel or string column (genres), or a list of them (tags)"
    )


def _name(root: Path) -> str:
    """The hub name of a dataset in the Hugging Face cache (``datasets--owner--name``), else the folder."""
    for part in root.parts:
        if part.startswith("datasets--"):
            return part.removeprefix("datasets--").replace("--", "/", 1)
    return root.name


def store_name(root: Path | str) -> str:
    """What the default store of the dataset at ``--root`` is named after: a hub name's own name
    (``marsyas/gtzan``: ``gtzan``), a local copy's folder (a copy in the hub cache: its dataset's name).

    >>> store_name("marsyas/gtzan"), store_name("/nonexistent/datasets--owner--my_set/snapshots/0a1b")
    ('gtzan', 'my_set')
    """
    path = Path(root).expanduser()
    if not path.exists() and str(root).count("/") == 1:  # a hub name, as hub_root reads it
        return str(root).rsplit("/", 1)[-1]
    return _name(path.absolute().resolve()).rsplit("/", 1)[-1] or "hf"


def _revision(root: Path, files: list[tuple[str | None, str]]) -> str:
    """The hub commit of a cached snapshot, the fingerprints ``datasets`` recorded, or ``parquet:<hash of the footers>``."""
    if root.parent.name == "snapshots":
        return root.name
    states = [root / (s or "") / "state.json" for s in dict.fromkeys(s for s, _ in files)]
    if all(p.is_file() for p in states):
        return ",".join(json.loads(p.read_text())["_fingerprint"] for p in states)
    digest = hashlib.sha1()
    for _, rel in files:
        digest.update(rel.encode())
        digest.update(pq.ParquetFile(root / rel).metadata.to_dict().__repr__().encode())
    return f"parquet:{digest.hexdigest()[:16]}"
