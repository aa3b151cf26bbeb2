"""What a store holds, as plain data: provenance, track counts, genres, failures, size.

``store_info`` returns a JSON-ready dict (what ``mrnet-store info --json`` prints); the command line
renders the same dict as tables.

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> from mrnet.store.reader import FeatureStore
>>> info = store_info(FeatureStore.open(synthetic_store(tempfile.mkdtemp() + "/i.zarr", per_genre=2)))
>>> info["counts"], info["genres"][0]
({'tracks': 6, 'pending': 0, 'done': 6, 'failed': 0}, {'name': 'calm', 'count': 2})
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
    genres = (
        store.genres.select("name", "count")
        if store.finalized
        else tracks.filter(pl.col("genre").is_not_null())
        .group_by("genre")
        .len("count")
        .sort("genre")
        .rename({"genre": "name"})
    )
    return {
        "store": store.location.url,
        "finalized": store.finalized,
        "provenance": p.to_json(),
        "counts": counts,
        "audio_hours": round(frames / p.frame_rate / 3600, 3),
        "frames": frames,
        "size_bytes": store.location.du() if size else None,
        "statistics": store.location.exists("manifest/statistics.json"),
        "genres": genres.to_dicts(),
        "failed": tracks.filter(pl.col("status") == "failed").select("track_id", "path", "error").to_dicts(),
    }
