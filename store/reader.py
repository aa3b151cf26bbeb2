"""Reading a store: its provenance, its manifest, and crops of any track without reading the rest.

>>> import tempfile, numpy as np, polars as pl
>>> from mrnet.store.format import Provenance
>>> from mrnet.store.writer import StoreWriter
>>> from mrnet.store.location import Location
>>> root = Location.parse(tempfile.mkdtemp() + "/demo.zarr")
>>> with StoreWriter.open(root, Provenance(feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1)) as w:
...     w.write_track("a", np.ones((1, 1, 500, 48), np.float16))
'crc32:...'
>>> FeatureStore.open(root.url).read("a", 100, 400).shape
(1, 1, 300, 48)
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import polars as pl
import zarr

from mrnet.core.errors import UserError, from_object_storage
from mrnet.manifests.schema import GENRES, TRACKS, validate
from mrnet.store import integrity
from mrnet.store import statistics as feature_statistics
from mrnet.store.format import read_provenance
from mrnet.store.integrity import INTEGRITY
from mrnet.store.layout import refuse_links_on_read
from mrnet.store.location import Location, check_key
from mrnet.store.shardread import ShardIndex, load_index, read_crop
from mrnet.store.writer import read_journal

#: Most bytes a read-time check (``check_reads``) holds at once: a 30 s, 13-layer WavLM track is 30 MB, one read.
CHECK_BLOCK_BYTES = 64 * 2**20


def open_track_array(
    location: Location, key: str, zstore: zarr.abc.store.Store | None = None
) -> tuple[zarr.Array, bytes]:
    """Track ``key``'s array and the bytes of its ``zarr.json``, from one read of that file.

    ``zarr.open_array`` asks an object store up to six times for an array it opens (a HEAD before the
    read, and Zarr v2's ``.zarray``/``.zattrs`` each with a listing when they are absent); this reads
    the metadata once (``Location.read_bytes``: one GET) and hands it to Zarr, which then reads only
    chunks. Raises ``FileNotFoundError`` for a missing array, Zarr's or JSON's errors for damaged metadata."""
    from zarr.core.array import AsyncArray
    from zarr.core.metadata import ArrayV3Metadata
    from zarr.storage import StorePath

    raw = location.read_bytes(f"features/{key}/zarr.json")
    meta = json.loads(raw)
    if not isinstance(meta, dict) or meta.get("node_type") != "array" or meta.get("zarr_format") != 3:
        raise ValueError(f"features/{key}/zarr.json is not the metadata of a Zarr v3 array")
    path = StorePath(zstore or location.zarr_store(read_only=True), f"features/{key}")
    return zarr.Array(AsyncArray(metadata=ArrayV3Metadata.from_dict(meta), store_path=path)), raw


class FeatureStore:
    """A store opened for reading, by local path or URL."""

    def __init__(self, location: Location, *, check_reads: bool = False):
        self.location = location
        for rel in ("zarr.json", "manifest", INTEGRITY, "progress"):
            refuse_links_on_read(location, rel)  # local stores: what describes the tracks is never read through a link
        self.provenance = read_provenance(location)
        self.check_reads = check_reads  # each track's checksum checked on its first read in this process
        self._arrays: dict[str, zarr.Array] = {}
        self._indexes: dict[str, ShardIndex | None] = {}
        self._checked: set[str] = set()

    @classmethod
    def open(
        cls, location: str | Location, *, storage_options: dict | None = None, check_reads: bool = False
    ) -> FeatureStore:
        """Open ``store/x.zarr``, ``file:///...`` or ``s3://bucket/x.zarr``. ``check_reads``: check each
        track's data against its checksum in the manifest the first time this process reads it (off by
        default: a first read then costs a whole track's read and CRC-32, docs/reliability.md)."""
        loc = location if isinstance(location, Location) else Location.parse(location, storage_options)
        return cls(loc, check_reads=check_reads)

    # --- manifest --------------------------------------------------------------------------------
    @cached_property
    def tracks(self) -> pl.DataFrame:
        """The track manifest. A store still being written (no final manifest) shows its journal."""
        if self.location.exists("manifest/tracks.parquet"):
            return validate(
                self._parquet("manifest/tracks.parquet"), TRACKS, name=f"{self.location.url}/manifest/tracks.parquet"
            )
        return read_journal(self.location)

    @cached_property
    def genres(self) -> pl.DataFrame:
        if not self.location.exists("manifest/genres.parquet"):
            raise UserError(
                f"{self.location.url} has no manifest/genres.parquet: its extraction has not finished. Run mrnet-extract again to finish it."
            )
        return validate(
            self._parquet("manifest/genres.parquet"), GENRES, name=f"{self.location.url}/manifest/genres.parquet"
        )

    def _parquet(self, rel: str) -> pl.DataFrame:
        """A manifest table, its bytes checked against the integrity record before they are parsed."""
        damaged = (
            f"the store's manifest is damaged. Run mrnet-store verify {self.location.url}; copy the store again from "
            "where it came from, or run its mrnet-extract again, which writes the manifest anew."
        )
        data = self.location.read_bytes(rel)
        if self._recorded and rel in self._recorded and integrity.crc(data) != self._recorded[rel]:
            raise UserError(f"{self.location.url}/{rel} changed since the store was finalized: {damaged}")
        try:
            return pl.read_parquet(io.BytesIO(data))
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as err:
            raise UserError(f"{self.location.url}/{rel} cannot be read ({type(err).__name__}): {damaged}") from err

    @cached_property
    def _recorded(self) -> dict[str, str] | None:
        """The integrity record's checksums (None: no record, or a damaged one, which verify reports)."""
        try:
            return integrity.recorded(self.location)
        except ValueError:
            return None

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
        if not self.location.exists("manifest/summary.json"):
            return {}
        try:
            return json.loads(self.location.read_bytes("manifest/summary.json"))
        except ValueError as err:
            raise UserError(
                f"{self.location.url}/manifest/summary.json is not valid JSON: the manifest is damaged. "
                f"Run mrnet-store verify {self.location.url}."
            ) from err

    # --- features --------------------------------------------------------------------------------
    def array(self, key: str) -> zarr.Array:
        if key not in self._arrays:
            check_key(f"features/{key}", where=self.location.url)
            refuse_links_on_read(self.location, f"features/{key}")
            try:
                arr, _ = open_track_array(self.location, key)
            except FileNotFoundError as err:
                raise UserError(
                    f"{self.location.url}: track array features/{key} is missing. Run mrnet-store verify {self.location.url}."
                ) from err
            except Exception as err:  # noqa: BLE001 - Zarr raises many kinds for metadata it cannot parse
                raise UserError(
                    f"{self.location.url}: features/{key}/zarr.json cannot be read ({type(err).__name__}: {err}); "
                    f"the track's metadata is damaged. Run mrnet-store verify {self.location.url}."
                ) from err
            p = self.provenance
            if (
                arr.ndim != 4
                or (arr.shape[0], arr.shape[1], arr.shape[3]) != (p.channels, len(p.layers), p.dim)
                or str(arr.dtype) != p.dtype
            ):
                raise UserError(
                    f"{self.location.url}: features/{key} is {arr.shape} {arr.dtype}, the store holds "
                    f"(channels {p.channels}, layers {len(p.layers)}, frames, dim {p.dim}) {p.dtype}: its metadata is damaged. "
                    f"Run mrnet-store verify {self.location.url}."
                )
            self._arrays[key] = arr
        return self._arrays[key]

    def frames(self, key: str) -> int:
        return int(self.array(key).shape[2])

    def read(
        self,
        key: str,
        start: int = 0,
        stop: int | None = None,
        layers: Sequence[int] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Frames ``[start, stop)`` of the given stored-layer positions: ``(channels, len(layers), stop-start, dim)``.

        ``layers`` are positions in ``provenance.layers`` (0..n-1), not WavLM layer numbers; ``None``
        reads all. Only the inner chunks overlapping the crop are fetched. ``out``: an array of that
        shape and the store's dtype to read into (the training loader fills a batch in place), returned.
        """
        arr = self.array(key)
        stop = arr.shape[2] if stop is None else stop
        if not 0 <= start <= stop <= arr.shape[2]:
            raise UserError(
                f"{self.location.url}: track {key}: frames [{start}, {stop}) asked for, the stored array has "
                f"{arr.shape[2]}; if the manifest says more, the store is damaged: run mrnet-store verify {self.location.url}."
            )
        positions = list(range(arr.shape[1])) if layers is None else list(layers)
        if out is not None and (
            out.shape != (arr.shape[0], len(positions), stop - start, arr.shape[3]) or out.dtype != arr.dtype
        ):
            raise ValueError(
                f"track {key}: out is {out.shape} {out.dtype}, the crop is "
                f"{(arr.shape[0], len(positions), stop - start, arr.shape[3])} {arr.dtype}"
            )
        try:
            if self.check_reads and key not in self._checked:
                self._check(key, arr)
            return self._read(key, arr, start, stop, positions, out)
        except (OSError, RuntimeError, ValueError) as err:  # a missing or damaged shard, a codec that cannot decode
            if from_object_storage(err):
                raise  # the store could not be reached, which is no damage: as_user_error names it
            raise UserError(
                f"{self.location.url}: track {key} cannot be read ({type(err).__name__}: {err}). "
                f"Its data is missing or damaged: run mrnet-store verify {self.location.url} to list every damaged track."
            ) from err

    @cached_property
    def _checksums(self) -> dict[str, str]:
        """Each done track's checksum in the manifest, by array key."""
        done = self.tracks.filter((pl.col("status") == "done") & pl.col("checksum").is_not_null())
        return dict(zip(done["key"].to_list(), done["checksum"].to_list()))

    def _check(self, key: str, arr: zarr.Array) -> None:
        """The whole track's CRC-32 against the manifest's (a flipped byte, two tracks' shards swapped), once."""
        expected = self._checksums.get(key)
        if expected is not None:
            found = integrity.streamed_checksum(
                lambda c, lo, hi: self._read(key, arr, 0, arr.shape[2], list(range(lo, hi)), None)[c],
                tuple(arr.shape),
                arr.dtype.itemsize,
                CHECK_BLOCK_BYTES,
            )
            if found != expected:
                raise UserError(
                    f"{self.location.url}: track {key} does not match its checksum in the manifest (its data "
                    f"{found}, the manifest {expected}): the store is damaged, or its shards were moved. Nothing of it "
                    f"was used. Run mrnet-store verify {self.location.url} to list every damaged track."
                )
        self._checked.add(key)

    def _read(
        self, key: str, arr: zarr.Array, start: int, stop: int, positions: list[int], out: np.ndarray | None
    ) -> np.ndarray:
        if key not in self._indexes:
            self._indexes[key] = load_index(self.location, key, arr)  # checked before any read, fused or not
        index = self._indexes[key]
        if (
            index is not None and index.plain and stop > start and index.chunk[1] == 1
        ):  # fused reads (store/shardread.py)
            return read_crop(self.location, index, start, stop, positions, out=out)
        if not positions:
            picked = arr[:, 0:0, start:stop, :]
        elif positions == list(range(positions[0], positions[0] + len(positions))):
            picked = arr[:, positions[0] : positions[0] + len(positions), start:stop, :]
        else:
            picked = arr.oindex[:, np.asarray(positions, dtype=np.intp), start:stop, :]
        crop = np.asarray(picked)  # an ndarray already (no copy); zarr declares a wider type
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
            raise UserError(
                f"{self.location.url} stores layers {stored}; layers {missing} were asked for. Re-extract with --layers including them, or ask for fewer."
            )
        return [stored.index(w) for w in wanted]
