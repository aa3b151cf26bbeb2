"""Polars manifests with declared schemas: tracks (one row per track) and genres."""

from mrnet.manifests.schema import GENRES, SPLITS, STATUSES, TRACKS, class_weights, genre_table, status_counts, validate, with_labels

__all__ = ["GENRES", "SPLITS", "STATUSES", "TRACKS", "class_weights", "genre_table", "status_counts", "validate", "with_labels"]
