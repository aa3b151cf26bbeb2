"""Hand-made stores for store tests, and ways to damage a store on purpose.

Damage goes through ``Location`` (fsspec), so the same call damages a local store and one on S3.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import polars as pl

from mrnet.manifests.schema import TRACKS, genre_table
from mrnet.store import Location, Provenance, StoreWriter
from mrnet.store.lock import LOCK


def small_store(path: Path | str, tracks: dict[str, np.ndarray | str], *, codec: str = "none") -> Location:
    """A finished mel store (dim 48): each track is its features, or an error string for a failed track."""
    prov = Provenance(
        feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1, extraction={"chunk_frames": 100, "codec": codec}
    )
    writer = StoreWriter.open(Location.parse(path), prov)
    rows = []
    for tid, x in tracks.items():
        done = not isinstance(x, str)
        rows.append(
            dict(
                track_id=tid,
                key=tid,
                path=f"g/{tid}.wav",
                genre="g",
                genres_all=["g"],
                frames=x.shape[2] if done else None,
                checksum=writer.write_track(tid, x) if done else None,
                status="done" if done else "failed",
                error=None if done else x,
            )
        )
    frame = pl.DataFrame(rows)
    frame = frame.with_columns([pl.lit(None).alias(c) for c in TRACKS if c not in frame.columns])
    frame = frame.select([pl.col(c).cast(t) for c, t in TRACKS.items()])
    writer.finalize(frame, genre_table(frame))
    writer.close()
    return writer.location


def stored(loc: Location) -> dict[str, int]:
    """The store's objects and sizes, without the writer's lock file (a copy leaves it behind)."""
    return {rel: size for rel, size in loc.files().items() if rel != LOCK}


def flip_byte(loc: Location, rel: str, offset: int) -> None:
    """Invert every bit of one byte of ``rel`` (a negative offset counts from the end)."""
    data = bytearray(loc.read_bytes(rel))
    data[offset] ^= 0xFF
    loc.write_bytes(rel, bytes(data))


def shard(key: str) -> str:
    """The one shard object of a track array written by StoreWriter."""
    return f"features/{key}/c/0/0/0/0"


def new_bucket() -> tuple:
    """A fresh, empty bucket on the test server: ``(s3fs filesystem, bucket name)``."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    bucket = f"mrnet-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    return fs, bucket
