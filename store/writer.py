"""Writing a store: create or reopen it, write whole tracks, journal finished work units, finalize.

Crash safety rests on one ordering rule, which :meth:`StoreWriter.write_unit` owns: a unit's tracks
are written in full, then the sums of their values (``progress/<unit>.stats.npz``), and only then
its rows reach the journal (``progress/<unit>.parquet``). A process killed at any moment leaves at
worst arrays and sums that no journal names; a resumed run rewrites them. Nothing marks a track done
whose data is incomplete, and every journaled unit has its sums.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import polars as pl
import zarr
from zarr.storage import MemoryStore

from mrnet.core.errors import UserError
from mrnet.core.files import is_temporary
from mrnet.manifests.schema import GENRES, TRACKS, status_counts, validate
from mrnet.store import integrity, statistics
from mrnet.store.format import ROOT_ATTR, Provenance, all_finite, checksum, read_provenance
from mrnet.store.location import Location, parquet_bytes
from mrnet.store.lock import WriterLock
from mrnet.store.ownership import ROOT_BACKUP, check_folder, clear_store
from mrnet.store.shardwrite import array_spec, write_shard_array


@dataclass(frozen=True)
class UnitWritten:
    """What :meth:`StoreWriter.write_unit` stored: the unit's journal rows (done and failed, in the
    order given), the feature bytes written and the frames stored."""

    unit: str
    rows: list[dict]
    bytes_written: int
    frames: int


#: One track for :meth:`StoreWriter.write_unit`: its manifest row (with what the source file was) and
#: its features ``(channels, layers, frames, dim)``, or the exception that failed it.
Track = tuple[dict, "np.ndarray | Exception"]


@dataclass
class StoreWriter:
    """Writes one store. ``StoreWriter.open(location, provenance)`` creates it or checks it matches and
    holds the store's writer lock until ``close()``; workers build it directly, without the lock."""

    location: Location
    provenance: Provenance
    lock: WriterLock | None = None
    created: bool = False  # this run created the store (store/ownership.discard_new can undo it)

    @classmethod
    def open(
        cls, location: Location, provenance: Provenance, *, overwrite: bool = False, command: str = "mrnet-extract"
    ) -> StoreWriter:
        """Create a new store, or reopen an existing one for resume/append if its settings match.

        Nothing mrnet did not write is ever deleted: a folder holding other files is refused, and so is
        a store whose root metadata is missing (an interrupted copy, or damage), with the command that
        repairs it; ``overwrite`` removes only a store's own parts.
        """
        check_folder(location, overwrite=overwrite)  # store/ownership.py: proof that mrnet wrote what it finds
        lock = WriterLock.acquire(location, command)  # the first file of a new store
        try:
            writer = cls._open_locked(location, provenance, overwrite=overwrite)
        except BaseException:
            lock.abandon()  # a refused run leaves the folder as it found it
            raise
        writer.lock = lock
        return writer

    @classmethod
    def _open_locked(cls, location: Location, provenance: Provenance, *, overwrite: bool) -> StoreWriter:
        if location.exists("zarr.json"):
            stored = read_provenance(location)
            if not overwrite:
                reasons = stored.compatibility(provenance)
                if reasons:
                    raise UserError(
                        f"{location.url} was written with other settings, so this run cannot add to it:\n  - "
                        + "\n  - ".join(reasons)
                        + "\nUse the store's settings (mrnet-store info shows them), write to another --out, or pass --overwrite."
                    )
                remove_temporary_files(location)  # a killed writer's leftovers; we hold the lock, so no one is writing
                return cls(location, stored)
            clear_store(location)
        root, features = group_metadata({ROOT_ATTR: provenance.to_json()}), group_metadata({})
        location.write_bytes(ROOT_BACKUP, root)  # first after the lock: mrnet's mark on the folder
        location.write_bytes("features/zarr.json", features)
        location.write_bytes("zarr.json", root)  # last: from here on the folder opens as a store
        return cls(location, provenance, created=True)

    def close(self) -> None:
        """Release the writer lock (a no-op for workers, which hold none)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- tracks ----------------------------------------------------------------------------------
    def write_track(self, key: str, features: np.ndarray) -> str:
        """Write one track's features ``(channels, layers, frames, dim)`` as one shard; return its checksum."""
        p = self.provenance
        expected = (p.channels, len(p.layers), p.dim)
        if features.ndim != 4 or (features.shape[0], features.shape[1], features.shape[3]) != expected:
            raise ValueError(
                f"track {key}: features {features.shape} do not fit the store's (channels, layers, T, dim) = {expected}"
            )
        if features.shape[2] == 0:
            raise ValueError(f"track {key}: no feature frames to write")
        with np.errstate(over="ignore"):  # overflow is reported below, per track
            data = np.ascontiguousarray(features, dtype=p.dtype)
        if not all_finite(data):
            raise ValueError(
                f"track {key}: features are not finite in {p.dtype} (overflow or NaN); store them with --dtype float32"
            )
        chunk = int(p.extraction.get("chunk_frames", 100))
        if p.extraction.get("codec", "none") == "none":  # the fused write: same array, no Zarr codec pipeline (W2)
            write_shard_array(self.location, f"features/{key}", data, chunk)
            return checksum(data)
        spec = array_spec(data.shape, p.dtype, chunk, p.extraction.get("codec", "none"))
        zarr.create_array(self.location.zarr_store(), name=f"features/{key}", overwrite=True, **spec)[...] = data
        return checksum(data)

    # --- one work unit: tracks, then their sums, then the journal ------------------------------------
    def write_unit(self, unit: str, groups: Iterable[Sequence[Track]], *, pool: Executor | None = None) -> UnitWritten:
        """Write a work unit in the order crash safety needs, and return what was stored.

        ``groups`` yields the unit's tracks a group at a time (a generator may compute each group's
        features as it is asked for it): a group's tracks are written together, on ``pool`` when given,
        before the next group is taken, so memory holds one group. A failed track, or one whose values
        do not fit the store (overflow in the stored dtype), becomes a failed row. After the last group:
        the sums of the stored values (the store's statistics), then the journal entry.
        """
        rows: list[dict] = []
        sums: dict[str, tuple[str, statistics.Sums]] = {}
        written = frames = 0
        for group in groups:
            results = (
                list(pool.map(self._write_one, group)) if pool is not None else [self._write_one(t) for t in group]
            )
            for row, track_sums, nbytes in results:
                rows.append(row)
                if track_sums is not None:
                    sums[row["track_id"]] = (statistics.track_group(row), track_sums)
                    written += nbytes
                    frames += row["frames"]
        statistics.write_unit(self.location, unit, sums)  # before the journal: a journaled unit has its sums
        self.commit_unit(unit, pl.DataFrame(rows, schema=TRACKS))
        return UnitWritten(unit, rows, written, frames)

    def _write_one(self, track: Track) -> tuple[dict, statistics.Sums | None, int]:
        """One track's journal row, the sums of its stored values (None when it failed) and its bytes."""
        row, result = track
        if isinstance(result, Exception):
            return dict(row, status="failed", error=str(result)), None, 0
        try:
            crc = self.write_track(row["key"], result)
        except ValueError as err:  # e.g. values that overflow the stored dtype
            return dict(row, status="failed", error=str(err)), None, 0
        done = dict(row, status="done", error=None, frames=int(result.shape[2]), checksum=crc)
        return (
            done,
            statistics.Sums.of(result, self.provenance.dtype),
            result.size * np.dtype(self.provenance.dtype).itemsize,
        )

    # --- journal ---------------------------------------------------------------------------------
    def commit_unit(self, unit: str, rows: pl.DataFrame) -> None:
        """Record finished tracks (done or failed) of one work unit. Call after all its writes."""
        self.location.write_bytes(
            f"progress/{unit}.parquet", parquet_bytes(validate(rows, TRACKS, name=f"unit {unit}"))
        )

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
        integrity.record(self.location)  # last: checksums of the metadata just written

    def record_statistics(self, tracks: pl.DataFrame) -> str:
        """Add up the units' sums (written by :meth:`write_unit`) into the store's statistics for the
        finished manifest ``tracks``; returns why not, or "" when recorded. A store without them still
        trains, except with --normalize stored."""
        groups, why = statistics.combine_units(self.location, tracks)
        if groups is None:
            if self.location.exists(statistics.INDEX):
                self.location.remove(statistics.INDEX)  # sums of an earlier manifest no longer describe this one
            return f"no feature statistics recorded: {why}; mrnet-store stats {self.location.url} computes them"
        statistics.write(self.location, groups, how="summed by the extraction workers over the stored values")
        return ""


def group_metadata(attributes: dict) -> bytes:
    """The ``zarr.json`` bytes of a Zarr v3 group with these attributes, as Zarr itself writes them.

    The store's groups are written as files rather than through ``zarr.open_group(mode="w")``, which
    clears whatever the folder holds first (the lock file included)."""
    files: dict = {}
    zarr.open_group(MemoryStore(files), mode="w", zarr_format=3, attributes=attributes)
    return files["zarr.json"].to_bytes()


def remove_temporary_files(location: Location) -> list[str]:
    """Delete the temporary files a killed writer left (mrnet's own, by name); return what was removed."""
    if not location.local:
        return []  # object stores publish whole objects: there is nothing half-written to remove
    found = [rel for rel in location.files() if is_temporary(rel)]
    for rel in found:
        location.remove(rel)
    return found


def read_journal(location: Location) -> pl.DataFrame:
    frames = []
    for name in location.listdir("progress"):
        if name.endswith(".parquet"):
            try:
                frame = pl.read_parquet(io.BytesIO(location.read_bytes(f"progress/{name}")))
            except (pl.exceptions.PolarsError, OSError) as err:
                raise UserError(
                    f"{location.url}/progress/{name} cannot be read ({type(err).__name__}): a damaged journal file. "
                    "Delete it and run mrnet-extract again: the tracks it named are extracted again."
                ) from err
            frames.append(validate(frame, TRACKS, name=name))
    if not frames:
        return pl.DataFrame(schema=TRACKS)
    return pl.concat(frames).unique("track_id", keep="last", maintain_order=True)
