"""Declared schemas of the two manifests: one row per track, one row per label (a genre, or a tag).

A store holds one task. **single-label**: each track has one ``genre`` (its ``label`` is the genre's
id). **multi-label** (tagging, MagnaTagATune): each track has ``tags``, any number of them, and no
genre. The label table (``genres.parquet``) lists the genres or the tags with their counts.

Every reader validates against these and fails on a missing or extra column, so a manifest written by
one version of the tool and read by another never silently changes meaning. The one exception is
declared by its name: a dataset's own per-track columns (a labels table's ``title``, ``album``) ride
along in the tracks manifest after the declared columns, as text, each named ``meta_<its name>``
(:data:`EXTRA_PREFIX`).
"""

from __future__ import annotations

import polars as pl

from mrnet.core.errors import UserError

#: Track status values. ``pending``: scanned, not yet extracted; ``done``: all its frames are in the
#: store and checksummed; ``failed``: could not be read or processed (``error`` says why).
STATUSES = ("pending", "done", "failed")

#: Split names. FMA's ``training``/``validation``/``test`` become ``train``/``valid``/``test``.
SPLITS = ("train", "valid", "test")

#: What a store's labels are: one genre per track, or any number of tags per track.
TASKS = ("single-label", "multi-label")

TRACKS = pl.Schema(
    {
        "track_id": pl.String(),  # the dataset's own id: "000002" (FMA), "blues.00000" (GTZAN)
        "key": pl.String(),  # array name inside the store; see mrnet.store.format.track_key
        "path": pl.String(),  # relative to the dataset root (POSIX); absolute where a folder link leads out of it
        "genre": pl.String(),  # label name; null when the track has no label under this labeling
        "label": pl.Int32(),  # index into the genre table; null with genre
        "genres_all": pl.List(pl.String()),  # every genre or tag the metadata gives (kept as published)
        # tags: a multi-label store's labels of the track (maybe none); null in single-label stores
        "tags": pl.List(pl.String()),
        "artist": pl.String(),  # grouping key for folds; null where the dataset has no artists
        "split": pl.String(),  # train / valid / test, or null where the dataset uses folds
        "fold": pl.Int16(),  # 0..k-1 for k-fold datasets, else null
        "duration": pl.Float64(),  # seconds, as the source file declares it
        "sample_rate": pl.Int32(),  # of the source file
        "channels": pl.Int16(),  # of the source file
        "frames": pl.Int64(),  # feature frames stored; null until extracted
        "checksum": pl.String(),  # "crc32:xxxxxxxx" over the stored array bytes; null until extracted
        "status": pl.String(),  # one of STATUSES
        "error": pl.String(),  # why a failed track failed
        "warning": pl.String(),  # why a done track is suspect (decoded far shorter than its file declares); null if not
    }
)

#: A dataset's own column beyond the declared ones is kept in the tracks manifest under this prefix
#: (``title`` -> ``meta_title``), as :data:`EXTRA_TYPE`; a column of any other undeclared name is refused.
EXTRA_PREFIX = "meta_"
EXTRA_TYPE = pl.String()

#: Columns added after a store format was published; an older manifest reads each as all null.
ADDED_COLUMNS = {"warning": pl.String(), "tags": pl.List(pl.String())}

GENRES = pl.Schema(
    {
        "name": pl.String,  # a genre, or a tag
        "id": pl.Int32,
        "count": pl.Int64,  # tracks with this genre (or tag) in the whole manifest
        "weight": pl.Float64,  # single-label: max_count / count; multi-label: negatives / positives (training recomputes per split)
    }
)


def extra_columns(frame: pl.DataFrame) -> list[str]:
    """The dataset's own columns of a tracks frame (``meta_...``), in their order.

    >>> extra_columns(pl.DataFrame({"track_id": ["a"], "meta_title": ["A song"]}))
    ['meta_title']
    """
    return [c for c in frame.columns if c.startswith(EXTRA_PREFIX) and c not in TRACKS]


def validate(frame: pl.DataFrame, schema: pl.Schema, *, name: str) -> pl.DataFrame:
    """Return ``frame`` with its columns in declared order, or raise naming what does not fit.

    Columns must match exactly by name; dtypes are cast where that is lossless (e.g. Int64 -> Int32
    from a Parquet writer that widened them) and rejected otherwise. A tracks frame (``schema`` is
    :data:`TRACKS`) keeps its ``meta_`` columns after the declared ones, as text.

    >>> validate(pl.DataFrame({"name": ["rock"], "id": [0], "count": [3], "weight": [1.0]}), GENRES, name="g").schema == GENRES
    True
    """
    later = [c for c in schema.names() if c not in frame.columns and c in ADDED_COLUMNS]
    frame = frame.with_columns(pl.lit(None, ADDED_COLUMNS[c]).alias(c) for c in later)
    missing = [c for c in schema.names() if c not in frame.columns]
    kept = extra_columns(frame) if schema is TRACKS else []
    extra = [c for c in frame.columns if c not in schema and c not in kept]
    if missing or extra:
        raise UserError(
            f"{name}: columns do not match the declared schema"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
        )
    try:
        return frame.select(
            [pl.col(c).cast(t, strict=True) for c, t in schema.items()]
            + [pl.col(c).cast(EXTRA_TYPE, strict=True) for c in kept]
        )
    except pl.exceptions.PolarsError as err:  # pragma: no cover - message is what matters
        raise UserError(f"{name}: a column has the wrong type ({err})") from err


def status_counts(tracks: pl.DataFrame) -> dict[str, int]:
    """Tracks in all, and per status, of a tracks manifest (or journal).

    >>> status_counts(pl.DataFrame({"status": ["done", "failed", "done"]}))
    {'tracks': 3, 'pending': 0, 'done': 2, 'failed': 1}
    """
    return {"tracks": tracks.height} | {s: int((tracks["status"] == s).sum()) for s in STATUSES}


def genre_table(tracks: pl.DataFrame) -> pl.DataFrame:
    """Genre table (name, id, count, weight) from labelled tracks; ids follow sorted genre names.

    >>> t = pl.DataFrame({"genre": ["rock", "jazz", "rock", None]})
    >>> genre_table(t).rows()
    [('jazz', 0, 1, 2.0), ('rock', 1, 2, 1.0)]
    """
    counts = tracks.filter(pl.col("genre").is_not_null()).group_by("genre").agg(pl.len().alias("count")).sort("genre")
    top = counts["count"].max() if counts.height else 1
    return validate(
        counts.select(
            pl.col("genre").alias("name"),
            pl.int_range(pl.len(), dtype=pl.Int32).alias("id"),
            pl.col("count").cast(pl.Int64),
            (pl.lit(top) / pl.col("count")).cast(pl.Float64).alias("weight"),
        ),
        GENRES,
        name="genres",
    )


def tag_table(tracks: pl.DataFrame, tags: list[str] | None = None) -> pl.DataFrame:
    """Label table of a multi-label manifest: one row per tag (``tags``, or every tag a track has), ids
    in sorted tag order, ``count`` the tracks that have it and ``weight`` the tracks that do not per
    track that does (BCE's positive weight; 0 for a tag no track has).

    >>> t = pl.DataFrame({"tags": [["rock", "loud"], ["rock"], []]})
    >>> tag_table(t, ["rock", "loud", "jazz"]).rows()
    [('jazz', 0, 0, 0.0), ('loud', 1, 1, 2.0), ('rock', 2, 2, 0.5)]
    """
    n = tracks.height
    seen = (
        tracks.select(pl.col("tags").explode().alias("name")).drop_nulls().group_by("name").agg(pl.len().alias("count"))
    )
    names = pl.DataFrame(
        {"name": sorted(set(tags) if tags is not None else set(seen["name"].to_list()))}, schema={"name": pl.String}
    )
    counts = names.join(seen, on="name", how="left").with_columns(pl.col("count").fill_null(0))
    return validate(
        counts.select(
            "name",
            pl.int_range(pl.len(), dtype=pl.Int32).alias("id"),
            pl.col("count").cast(pl.Int64),
            pl.when(pl.col("count") > 0)
            .then((pl.lit(n) - pl.col("count")) / pl.col("count"))
            .otherwise(0.0)
            .cast(pl.Float64)
            .alias("weight"),
        ),
        GENRES,
        name="tags",
    )


def with_labels(tracks: pl.DataFrame, genres: pl.DataFrame) -> pl.DataFrame:
    """Fill ``label`` from ``genre`` using the genre table's ids."""
    ids = dict(zip(genres["name"].to_list(), genres["id"].to_list()))
    return tracks.with_columns(pl.col("genre").replace_strict(ids, default=None, return_dtype=pl.Int32).alias("label"))


def class_weights(tracks: pl.DataFrame, num_classes: int) -> list[float]:
    """``max_count / count`` per label id over ``tracks`` (the training split); 0 for absent classes.

    >>> class_weights(pl.DataFrame({"label": [0, 0, 1]}, schema={"label": pl.Int32}), 3)
    [1.0, 2.0, 0.0]
    """
    counts = [0] * num_classes
    for label, n in tracks.group_by("label").len().iter_rows():
        if label is not None:
            counts[label] = n
    top = max(counts) if counts else 0
    return [top / c if c else 0.0 for c in counts]
