"""Reading a store: its provenance, its manifest, and crops of any track without reading the rest.

>>> import tempfile, numpy as np, polars as pl
>>> from mrnet.store.format import Provenance
>>> from mrnet.store.writer import StoreWriter
>>> from mrnet.store.location import Location
>>> root = Location.parse(tempfile.mkdtemp() + "/demo.zarr")
>>> w = StoreWriter.open(root, Provenance(feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1))
>>> w.write_track("a", np.ones((1, 1, 500, 48), np.float16))
'crc32:...'
>>> FeatureStore.open(root.url).read("a", 100, 400).shape
(1, 1, 300, 48)
"""

from __future__ import annotations

import io
import json
from functools import cached_property
from typing import Sequence

import numpy as np
import polars as pl
import zarr

from mrnet.manifests.schema import GENRES, TRACKS, validate
from mrnet.core.errors import UserError
from mrnet.store.format import Provenance
from mrnet.store.location import Location
from mrnet.store import statistics as feature_statistics
from mrnet.store.shardread import ShardIndex, load_index, read_crop
from mrnet.store.writer import ROOT_ATTR, read_journal


class FeatureStore:
    """A store opened for reading, by local path or URL."""

    def __init__(self, location: Location):
        self.location = location
        try:
            self._group = zarr.open_group(location.zarr_store(read_only=True), mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError) as err:
            raise UserError(
                f"{location.url} is not a feature store (no Zarr group there). "
                "Check the path, or create it with mrnet-extract."
            ) from err
        attrs = dict(self._group.attrs)
        if ROOT_ATTR not in attrs:
            raise UserError(f"{location.url} is a Zarr group but not an mrnet store (no '{ROOT_ATTR}' attributes).")
        self.provenance = Provenance.from_json(attrs[ROOT_ATTR], where=location.url)
        self._arrays: dict[str, zarr.Array] = {}
        self._indexes: dict[str, ShardIndex | None] = {}

    @classmethod
    def open(cls, location: str | Location, *, storage_options: dict | None = None) -> "FeatureStore":
        """Open ``store/x.zarr``, ``file:///...`` or ``s3://bucket/x.zarr``."""
        loc = location if isinstance(location, Location) else Location.parse(location, storage_options)
        return cls(loc)

    # --- manifest --------------------------------------------------------------------------------
    @cached_property
    def tracks(self) -> pl.DataFrame:
        """The track manifest. A store still being written (no final manifest) shows its journal."""
        if self.location.exists("manifest/tracks.parquet"):
            raw = pl.read_parquet(io.BytesIO(self.location.read_bytes("manifest/tracks.parquet")))
            return validate(raw, TRACKS, name=f"{self.location.url}/manifest/tracks.parquet")
        return read_journal(self.location)

    @cached_property
    def genres(self) -> pl.DataFrame:
        if not self.location.exists("manifest/genres.parquet"):
            raise UserError(f"{self.location.url} has no manifest/genres.parquet: its extraction has not finished. Run mrnet-extract again to finish it.")
        raw = pl.read_parquet(io.BytesIO(self.location.read_bytes("manifest/genres.parquet")))
        return validate(raw, GENRES, name=f"{self.location.url}/manifest/genres.parquet")

    def statistics(self):
        """The per-group feature sums (``store.statistics``), or None when the store has none."""
        try:
            return feature_statistics.read(self.location)
        except ValueError as err:
            raise UserError(f"{err}. Recompute them: mrnet-store stats {self.location.url}") from err

    @property
    def finalized(self) -> bool:
        return self.location.exists("manifest/tracks.parquet")

    def summary(self) -> dict:
        return json.loads(self.location.read_bytes("manifest/summary.json")) if self.location.exists("manifest/summary.json") else {}

    # --- features --------------------------------------------------------------------------------
    def array(self, key: str) -> zarr.Array:
        if key not in self._arrays:
            try:
                self._arrays[key] = zarr.open_array(self.location.zarr_store(read_only=True), path=f"features/{key}", mode="r")
            except FileNotFoundError as err:
                raise UserError(f"{self.location.url}: track array features/{key} is missing. Run mrnet-store verify.") from err
        return self._arrays[key]

    def frames(self, key: str) -> int:
        return int(self.array(key).shape[2])

    def read(self, key: str, start: int = 0, stop: int | None = None, layers: Sequence[int] | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` of the given stored-layer positions: ``(channels, len(layers), stop-start, dim)``.

        ``layers`` are positions in ``provenance.layers`` (0..n-1), not WavLM layer numbers; ``None``
        reads all. Only the inner chunks overlapping the crop are fetched. ``out``: an array of that
        shape and the store's dtype to read into (the training loader fills a batch in place), returned.
        """
        arr = self.array(key)
        stop = arr.shape[2] if stop is None else stop
        if not 0 <= start <= stop <= arr.shape[2]:
            raise IndexError(f"track {key}: frames [{start}, {stop}) outside 0..{arr.shape[2]}")
        positions = list(range(arr.shape[1])) if layers is None else list(layers)
        if out is not None and (out.shape != (arr.shape[0], len(positions), stop - start, arr.shape[3]) or out.dtype != arr.dtype):
            raise ValueError(f"track {key}: out is {out.shape} {out.dtype}, the crop is "
                             f"{(arr.shape[0], len(positions), stop - start, arr.shape[3])} {arr.dtype}")
        if key not in self._indexes:
            self._indexes[key] = load_index(self.location, key, arr)
        index = self._indexes[key]
        if index is not None and stop > start and index.chunk[1] == 1:  # fused reads (store/shardread.py)
            return read_crop(self.location, index, start, stop, positions, out=out)
        if not positions:
            crop = arr[:, 0:0, start:stop, :]
        elif positions == list(range(positions[0], positions[0] + len(positions))):
            crop = arr[:, positions[0] : positions[0] + len(positions), start:stop, :]
        else:
            crop = arr.oindex[:, positions, start:stop, :]
        if out is None:
            return crop
        out[...] = crop
        return out

    def layer_positions(self, wanted: Sequence[int] | None) -> list[int]:
        """Map model layer numbers (e.g. WavLM 0..12) to positions in this store, or fail naming the missing ones."""
        stored = self.provenance.layers
        if wanted is None:
            return list(range(len(stored)))
        missing = [w for w in wanted if w not in stored]
        if missing:
            raise UserError(f"{self.location.url} stores layers {stored}; layers {missing} were asked for. Re-extract with --layers including them, or ask for fewer.")
        return [stored.index(w) for w in wanted]
