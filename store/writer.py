"""Writing a store: create or reopen it, write whole tracks, journal finished work units, finalize.

Crash safety rests on one ordering rule: a track's rows reach the journal (``progress/<unit>.parquet``)
only after every track of that unit has been written in full. A process killed at any moment leaves
at worst arrays that no journal names; a resumed run rewrites them. Nothing marks a track done whose
data is incomplete.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import polars as pl
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from mrnet.manifests.schema import GENRES, TRACKS, status_counts, validate
from mrnet.core.errors import UserError
from mrnet.store.format import CODECS, Provenance, all_finite, checksum
from mrnet.store.location import Location, parquet_bytes
from mrnet.store.shardwrite import write_shard_array

ROOT_ATTR = "mrnet"


def compressors_for(codec: str, dtype: str):
    """Zarr v3 compressor list for a codec name (see docs/store.md for what each costs)."""
    if codec == "none":
        return None
    if codec == "zstd":
        return [ZstdCodec(level=3)]
    if codec == "blosc":
        size = np.dtype(dtype).itemsize
        return [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=size)]
    raise UserError(f"--codec {codec!r}: choose one of {', '.join(CODECS)}")


@dataclass
class StoreWriter:
    """Writes one store. ``StoreWriter.open(location, provenance)`` creates it or checks it matches."""

    location: Location
    provenance: Provenance

    @classmethod
    def open(cls, location: Location, provenance: Provenance, *, overwrite: bool = False) -> "StoreWriter":
        """Create a new store, or reopen an existing one for resume/append if its settings match."""
        root_exists = location.exists("zarr.json")
        if root_exists and overwrite:
            location.remove("")
            root_exists = False
        if root_exists:
            group = zarr.open_group(location.zarr_store(), mode="r+")
            stored = Provenance.from_json(dict(group.attrs.get(ROOT_ATTR, {})), where=location.url)
            reasons = stored.compatibility(provenance)
            if reasons:
                raise UserError(
                    f"{location.url} was written with other settings, so this run cannot add to it:\n  - "
                    + "\n  - ".join(reasons)
                    + "\nUse the store's settings (mrnet-store info shows them), write to another --out, or pass --overwrite."
                )
            return cls(location, stored)
        group = zarr.open_group(location.zarr_store(), mode="w", zarr_format=3)
        group.attrs[ROOT_ATTR] = provenance.to_json()
        group.create_group("features")
        return cls(location, provenance)

    # --- tracks ----------------------------------------------------------------------------------
    def write_track(self, key: str, features: np.ndarray) -> str:
        """Write one track's features ``(channels, layers, frames, dim)`` as one shard; return its checksum."""
        p = self.provenance
        expected = (p.channels, len(p.layers), p.dim)
        if features.ndim != 4 or (features.shape[0], features.shape[1], features.shape[3]) != expected:
            raise ValueError(f"track {key}: features {features.shape} do not fit the store's (channels, layers, T, dim) = {expected}")
        if features.shape[2] == 0:
            raise ValueError(f"track {key}: no feature frames to write")
        with np.errstate(over="ignore"):  # overflow is reported below, per track
            data = np.ascontiguousarray(features, dtype=p.dtype)
        if not all_finite(data):
            raise ValueError(f"track {key}: features are not finite in {p.dtype} (overflow or NaN); store them with --dtype float32")
        chunk = int(p.extraction.get("chunk_frames", 100))
        if p.extraction.get("codec", "none") == "none":  # the fused write: same array, no Zarr codec pipeline (W2)
            write_shard_array(self.location, f"features/{key}", data, chunk)
            return checksum(data)
        padded = -(-data.shape[2] // chunk) * chunk
        zarr.create_array(
            self.location.zarr_store(),
            name=f"features/{key}",
            shape=data.shape,
            dtype=p.dtype,
            chunks=(p.channels, 1, chunk, p.dim),
            shards=(p.channels, len(p.layers), padded, p.dim),
            compressors=compressors_for(p.extraction.get("codec", "none"), p.dtype),
            dimension_names=("channel", "layer", "frame", "dim"),
            overwrite=True,
            # Features are never all zeros: skip Zarr's per-chunk emptiness pass (1.4x faster writes,
            # docs/performance.md W1). An all-zero chunk is stored rather than left out; reads are equal.
            config={"write_empty_chunks": True},
        )[...] = data
        return checksum(data)

    # --- journal ---------------------------------------------------------------------------------
    def commit_unit(self, unit: str, rows: pl.DataFrame) -> None:
        """Record finished tracks (done or failed) of one work unit. Call after all its writes."""
        self.location.write_bytes(f"progress/{unit}.parquet", parquet_bytes(validate(rows, TRACKS, name=f"unit {unit}")))

    def journal(self) -> pl.DataFrame:
        """Every journaled row; a track journaled twice keeps its latest row (unit names sort by time)."""
        return read_journal(self.location)

    # --- finish ----------------------------------------------------------------------------------
    def finalize(self, tracks: pl.DataFrame, genres: pl.DataFrame) -> None:
        """Write the manifest that travels with the store."""
        self.location.write_bytes("manifest/tracks.parquet", parquet_bytes(validate(tracks, TRACKS, name="tracks")))
        self.location.write_bytes("manifest/genres.parquet", parquet_bytes(validate(genres, GENRES, name="genres")))
        summary = status_counts(tracks)
        self.location.write_bytes("manifest/summary.json", json.dumps(summary, indent=2).encode())


def read_journal(location: Location) -> pl.DataFrame:
    frames = []
    for name in location.listdir("progress"):
        if name.endswith(".parquet"):
            frames.append(validate(pl.read_parquet(io.BytesIO(location.read_bytes(f"progress/{name}"))), TRACKS, name=name))
    if not frames:
        return pl.DataFrame(schema=TRACKS)
    return pl.concat(frames).unique("track_id", keep="last", maintain_order=True)
