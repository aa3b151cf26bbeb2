"""Polars manifests with declared schemas: tracks (one row per track) and genres."""

from mrnet.manifests.schema import (
    EXTRA_PREFIX,
    GENRES,
    SPLITS,
    STATUSES,
    TASKS,
    TRACKS,
    class_weights,
    extra_columns,
    genre_table,
    status_counts,
    tag_table,
    validate,
    with_labels,
)

__all__ = [
    "EXTRA_PREFIX",
    "GENRES",
    "SPLITS",
    "STATUSES",
    "TASKS",
    "TRACKS",
    "class_weights",
    "extra_columns",
    "genre_table",
    "status_counts",
    "tag_table",
    "validate",
    "with_labels",
]
