"""Polars manifests with declared schemas: tracks (one row per track) and genres."""

from mrnet.manifests.schema import (
    GENRES,
    SPLITS,
    STATUSES,
    TASKS,
    TRACKS,
    class_weights,
    genre_table,
    status_counts,
    tag_table,
    validate,
    with_labels,
)

__all__ = [
    "GENRES",
    "SPLITS",
    "STATUSES",
    "TASKS",
    "TRACKS",
    "class_weights",
    "genre_table",
    "status_counts",
    "tag_table",
    "validate",
    "with_labels",
]
