"""What a store holds, as plain data: provenance, the task, track counts, split or fold sizes, genres
(or tags), failures, size.

``store_info`` returns a JSON-ready dict (what ``mrnet-store info --json`` prints); the command line
renders the same dict as tables. Each genre's (or tag's) ``count`` is of its extracted tracks, those
training reads; its failed tracks are counted apart (``failed``), and so are split and fold sizes.

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> from mrnet.store.reader import FeatureStore
>>> info = store_info(FeatureStore.open(synthetic_store(tempfile.mkdtemp() + "/i.zarr", per_genre=2)))
>>> info["counts"], info["genres"][0], info["task"], info["parts"]
({'tracks': 6, 'pending': 0, 'done': 6, 'failed': 0}, {'name': 'calm', 'count': 2, 'failed': 0}, 'single-label', {'train': 6})
>>> part_sizes(pl.DataFrame({"split": [None] * 3, "fold": [1, 0, 1], "status": ["done", "done", "failed"]}))
{'fold 0': 1, 'fold 1': 1}
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mrnet.manifests.schema import status_counts
from mrnet.store.reader import FeatureStore


def store_info(store: FeatureStore, *, size: bool = True) -> dict[str, Any]:
    """Summary of ``store``; ``size=False`` skips the listing that totals bytes on disk."""
    p, tracks = store.provenance, store.tracks
    counts = status_counts(tracks)
    done = tracks.filter(pl.col("status") == "done")
    frames = int(done["frames"].sum() or 0)
    return {
        "store": store.location.url,
        "finalized": store.finalized,
        "provenance": p.to_json(),
        "task": p.task,
        "counts": counts,
        "parts": part_sizes(tracks),
        "audio_hours": round(frames / p.frame_rate / 3600, 3),
        "frames": frames,
        "size_bytes": store.location.du() if size else None,
        "statistics": store.location.exists("manifest/statistics.json"),
        "genres": label_counts(
            tracks, multilabel=p.task == "multi-label", names=store.genres["name"] if store.finalized else None
        ).to_dicts(),
        "failed": tracks.filter(pl.col("status") == "failed").select("track_id", "path", "error").to_dicts(),
    }


def label_counts(tracks: pl.DataFrame, *, multilabel: bool, names: pl.Series | None = None) -> pl.DataFrame:
    """Per genre (or tag, ``multilabel``): its extracted tracks (``count``) and its failed ones (``failed``);
    every class of the store's table ``names`` is listed, one without tracks at 0."""
    rows = tracks.explode("tags").rename({"tags": "name"}) if multilabel else tracks.rename({"genre": "name"})
    counts = (
        rows.filter(pl.col("name").is_not_null())
        .group_by("name")
        .agg(
            (pl.col("status") == "done").sum().cast(pl.Int64).alias("count"),
            (pl.col("status") == "failed").sum().cast(pl.Int64).alias("failed"),
        )
    )
    if names is not None:
        table = pl.DataFrame({"name": names.cast(pl.String)})
        counts = table.join(counts, on="name", how="full", coalesce=True).fill_null(0)
    return counts.sort("name")


def part_sizes(tracks: pl.DataFrame) -> dict[str, int]:
    """Extracted tracks per official split (train, valid, test) or, in a store of folds, per fold."""
    done = tracks.filter(pl.col("status") == "done")
    if done["split"].is_not_null().any():
        return {
            name: int((done["split"] == name).sum())
            for name in ("train", "valid", "test")
            if (done["split"] == name).any()
        }
    folds = done["fold"].drop_nulls().value_counts().sort("fold").rows()
    return {f"fold {k}": int(n) for k, n in folds}
