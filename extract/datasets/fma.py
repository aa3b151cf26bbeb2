"""FMA (Free Music Archive): fma_small / fma_medium / fma_large with the official metadata.

```
ROOT/fma_metadata/tracks.csv     3 header lines (group, sub-column, "track_id"), 52 columns, index track_id
ROOT/fma_metadata/genres.csv     genre_id,#tracks,parent,title,top_level
ROOT/fma_<subset>/000/000002.mp3 audio: first 3 digits of the 6-digit id, then the id
```

Subsets are nested (small < medium < large): ``fma_medium`` holds the tracks whose ``set.subset`` is
small or medium, ``fma_large`` every track. The official split (``set.split``, assigned per artist)
is kept: training / validation / test become train / valid / test; ``artist`` is ``artist.id``.

Labelings:

- ``top`` (default): ``track.genre_top``, the root genre (8 in small, 16 in medium and large).
  Tracks whose genres span several roots have no ``genre_top`` and are left out (a note counts them).
- ``all``: the MRNet paper's FMA-large task over all genres (161 classes in the paper). The label is
  the title of the FIRST genre id in ``track.genres`` (the order the metadata lists them); tracks
  with an empty list are left out. The paper does not say how one label is picked from a track with
  several genres; first-listed is this tool's choice.

``genres_all`` is always the titles of ``track.genres_all`` (every genre and its ancestors).

>>> pl.DataFrame({"genres": ["[21, 45]", "[]"]}).select(id_list("genres")).to_series().to_list()
[[21, 45], []]
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from mrnet.core.errors import UserError

from .base import Scan, make_scan, mark_missing, require_file, tracks_frame
from .registry import ReaderOptions, reader

SUBSETS = ("small", "medium", "large")
LABELINGS = ("top", "all")
SPLITS = {"training": "train", "validation": "valid", "test": "test"}
#: Columns this reader needs from tracks.csv, as group.sub-column.
COLUMNS = ("artist.id", "set.split", "set.subset", "track.genre_top", "track.genres", "track.genres_all")
#: Known bad files of the real dataset (track id -> problem). They stay in the manifest; see docs/datasets.md.
KNOWN_BAD = {
    "098565": "much shorter than 30 s",
    "098567": "much shorter than 30 s",
    "098569": "much shorter than 30 s",
    "099134": "contains no audio",
    "108925": "contains no audio",
    "133297": "contains no audio (1,752 bytes)",
}


def _expected(subset: str) -> str:
    return (
        f"expected the FMA layout ROOT/fma_metadata/tracks.csv, ROOT/fma_metadata/genres.csv and ROOT/fma_{subset}/000/000002.mp3; "
        "pass --root pointing at the folder that contains fma_metadata"
    )


def id_list(column: str) -> pl.Expr:
    """A Python-literal list of ints (``"[21, 45]"``) as a List(Int64), in Polars."""
    items = pl.col(column).str.strip_chars("[] ").str.split(",")
    return items.list.eval(pl.element().str.strip_chars().filter(pl.element() != "").cast(pl.Int64))


def _header(path: Path, subset: str) -> list[str]:
    """Column names ``group.sub`` of tracks.csv from its three header lines, checked against the FMA layout."""
    with path.open(newline="", encoding="utf-8") as f:
        lines = [row for _, row in zip(range(3), csv.reader(f))]
    if len(lines) < 3 or not lines[2] or lines[2][0] != "track_id" or len(lines[0]) != len(lines[1]):
        raise UserError(
            f"{path} does not start with the three FMA header lines (column group, sub-column, then track_id): "
            f"is it fma_metadata/tracks.csv as published? {_expected(subset)}"
        )
    names = [f"{g}.{s}" for g, s in zip(lines[0][1:], lines[1][1:])]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise UserError(f"{path}: no column {', '.join(missing)} (found {len(names)} columns); {_expected(subset)}")
    return ["track_id", *names]


def _tracks_csv(path: Path, subset: str) -> pl.DataFrame:
    """The needed columns of tracks.csv, all read as strings (the real file is 250 MB; Polars reads it in seconds)."""
    names = _header(path, subset)
    index = [0, *(names.index(c) for c in COLUMNS)]
    try:
        frame = pl.read_csv(path, has_header=False, skip_rows=3, columns=index, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise UserError(f"cannot parse {path} as the FMA tracks.csv: {err}") from err
    return frame.rename(dict(zip(frame.columns, ["track_id", *COLUMNS])))


def _genre_titles(path: Path, subset: str) -> dict[int, str]:
    try:
        genres = pl.read_csv(path, infer_schema=False)
        return dict(zip(genres["genre_id"].cast(pl.Int64).to_list(), genres["title"].to_list()))
    except (pl.exceptions.PolarsError, KeyError) as err:
        raise UserError(
            f"{path} is not the FMA genres.csv (genre_id,#tracks,parent,title,top_level): {err}; {_expected(subset)}"
        ) from err


def _columns(raw: pl.DataFrame, titles: dict[int, str], labeling: str) -> pl.DataFrame:
    """Reader columns from tracks.csv rows: 6-digit id, genre under ``labeling``, genre titles, artist, split."""

    def title(ids: pl.Expr) -> pl.Expr:
        return ids.replace_strict(titles, default=None, return_dtype=pl.String)

    return raw.select(
        track_id=pl.col("track_id").str.strip_chars().str.zfill(6),
        genre=pl.col("track.genre_top") if labeling == "top" else title(id_list("track.genres").list.first()),
        genres_all=id_list("track.genres_all").list.eval(title(pl.element())).list.drop_nulls(),
        artist=pl.col("artist.id").str.strip_chars(),
        split=pl.col("set.split").replace_strict(SPLITS, default=None),
    )


@reader(*(f"fma_{subset}" for subset in SUBSETS), labelings=LABELINGS)
def read(root: Path, options: ReaderOptions) -> Scan:
    """Scan an FMA copy for the subset ``options.name`` names (small / medium / large) under
    ``options.labeling`` (top / all)."""
    subset, labeling = options.name.removeprefix("fma_"), options.labeling
    meta, audio = root / "fma_metadata", f"fma_{subset}"
    tracks_csv = require_file(meta / "tracks.csv", _expected(subset))
    titles = _genre_titles(require_file(meta / "genres.csv", _expected(subset)), subset)
    if not (root / audio).is_dir():
        raise UserError(f"no {audio} folder under {root}: {_expected(subset)}")
    raw = _tracks_csv(tracks_csv, subset).filter(pl.col("set.subset").is_in(SUBSETS[: SUBSETS.index(subset) + 1]))
    odd = raw.filter(~pl.col("track_id").str.strip_chars().str.contains(r"^[0-9]{1,6}$"))
    if odd.height:  # audio paths are built from the id: only digits may go into them
        raise UserError(
            f"{tracks_csv}: {odd.height} track_id values are not numbers of up to 6 digits, e.g. {odd['track_id'][0]!r}; "
            f"is it the FMA tracks.csv as published? {_expected(subset)}"
        )
    frame = _columns(raw, titles, labeling)
    bad_split = frame.filter(pl.col("split").is_null()).height
    if bad_split:
        raise UserError(
            f"{tracks_csv}: {bad_split} tracks of {audio} have a set.split other than training/validation/test"
        )
    notes = []
    unlabelled = frame.filter(pl.col("genre").is_null()).height
    if unlabelled:
        why = (
            "no track.genre_top (their genres span several root genres)"
            if labeling == "top"
            else "an empty track.genres list"
        )
        notes.append(
            f"{unlabelled} of {frame.height} tracks of {audio} have {why} and are left out under labeling {labeling!r}"
        )
    frame = frame.filter(pl.col("genre").is_not_null()).with_columns(
        path=pl.format("{}/{}/{}.mp3", pl.lit(audio), pl.col("track_id").str.slice(0, 3), pl.col("track_id"))
    )
    tracks = mark_missing(tracks_frame(frame), root).sort("track_id")
    listed = set(tracks.filter(pl.col("track_id").is_in(list(KNOWN_BAD)))["track_id"])
    present = [f"{tid} ({why})" for tid, why in KNOWN_BAD.items() if tid in listed]
    if present:
        notes.append(
            f"known bad FMA files in this selection: {', '.join(present)}; kept, extraction decides (see docs/datasets.md)"
        )
    return make_scan(f"fma_{subset}", root, source="audio", labeling=labeling, tracks=tracks, notes=notes)
