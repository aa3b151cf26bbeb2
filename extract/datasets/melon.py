"""Melon Playlist Dataset: Mel spectrograms only (no audio), labelled by major genre.

```
ROOT/song_meta.json             list of songs: id, album_id, artist_id_basket, artist_name_basket, song_name,
                                song_gn_gnr_basket (major codes, GN0100), song_gn_dtl_gnr_basket (detailed), issue_date
ROOT/genre_gn_all.json          genre code -> name (Korean)
ROOT/arena_mel/<id // 1000>/<id>.npy   float array (48, ~1876): 48 Mel bands, 16 kHz, hop 256, the 20-50 s segment
```

Protocol of the MRNet authors' lab: keep songs with exactly one major genre code, whose label is that
code (``GN0100``); ``genres_all`` holds the detailed codes; ``artist`` is the first artist id.
Folds: seeded stratified 10-fold, grouped by artist so no artist is in two folds.

Missing ``.npy`` files are found at scan time by listing each ``arena_mel/<n>`` folder once (about
700 ``listdir`` calls for 649k songs, no per-file ``stat``); such songs are kept as ``failed`` rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from mrnet.core.errors import UserError

from .base import Scan, make_scan, mark_missing, require_dir, require_file, tracks_frame
from .folds import assign_folds
from .registry import ReaderOptions, reader

SONG_SCHEMA = {
    "id": pl.Int64(),  # instances, as pl.List(...) is: one declared type for the dict
    "artist_id_basket": pl.List(pl.Int64),
    "song_gn_gnr_basket": pl.List(pl.String),
    "song_gn_dtl_gnr_basket": pl.List(pl.String),
}
_EXPECTED = (
    "expected the Melon Playlist Dataset layout ROOT/song_meta.json, ROOT/genre_gn_all.json and "
    "ROOT/arena_mel/<id // 1000>/<id>.npy; pass --root pointing at the folder that contains song_meta.json"
)


def _songs(path: Path) -> pl.DataFrame:
    try:
        return pl.read_json(path, schema=SONG_SCHEMA)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise UserError(f"cannot read {path} as the Melon song_meta.json (a JSON list of songs): {err}") from err


@reader("melon", ships="melon", features="mel", labelings=("major",))
def read(root: Path, options: ReaderOptions) -> Scan:
    """Scan a Melon Playlist Dataset copy: songs with exactly one major genre, k-fold grouped by artist."""
    songs = _songs(require_file(root / "song_meta.json", _EXPECTED))
    try:
        names = json.loads(require_file(root / "genre_gn_all.json", _EXPECTED).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"cannot read {root / 'genre_gn_all.json'} as JSON (genre code -> name): {err}") from err
    if not isinstance(names, dict):
        raise UserError(f'{root / "genre_gn_all.json"} should map genre codes to names, e.g. {{"GN0100": "..."}}')
    require_dir(root / "arena_mel", _EXPECTED)
    one = songs.filter(pl.col("song_gn_gnr_basket").list.len() == 1).sort("id")
    notes = []
    if one.height < songs.height:
        notes.append(
            f"{songs.height - one.height} of {songs.height} songs have no or several major genres and are left out"
        )
    frame = one.select(
        track_id=pl.col("id").cast(pl.String),
        path=pl.format("arena_mel/{}/{}.npy", pl.col("id") // 1000, pl.col("id")),
        genre=pl.col("song_gn_gnr_basket").list.first(),
        genres_all=pl.col("song_gn_dtl_gnr_basket").fill_null([]),
        artist=pl.col("artist_id_basket").list.first().cast(pl.String),
    )
    unknown = sorted(set(frame["genre"].unique().to_list()) - set(names))
    if unknown:
        notes.append(f"genre codes not in genre_gn_all.json: {unknown[:10]}")
    tracks = mark_missing(assign_folds(tracks_frame(frame), k=options.folds, seed=options.seed), root)
    return make_scan("melon", root, source="melon", labeling="major", tracks=tracks, notes=notes)
