"""Checking a store against its own manifest: every done track's array, shape, shard and checksum.

``verify_store`` reads every track marked ``done`` in full and recomputes its CRC-32 (the same
``crc32:xxxxxxxx`` that :func:`mrnet.store.format.checksum` wrote), reading long tracks a few whole
layers at a time so memory stays bounded. What it finds is a list of :class:`Problem`, each naming the
track, its array key and what is wrong.

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> from mrnet.store.location import Location
>>> loc = Location.parse(synthetic_store(tempfile.mkdtemp() + "/v.zarr", per_genre=1))
>>> report = verify_store(loc, workers=2)
>>> report.ok, report.checked, report.problems
(True, 3, [])
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
import zarr
import zarr.abc.store

from mrnet.core.errors import UserError
from mrnet.core.files import is_temporary
from mrnet.manifests.schema import status_counts
from mrnet.store import integrity, statistics
from mrnet.store.layout import links, prefix_clashes, unexplained
from mrnet.store.location import Location, check_key
from mrnet.store.reader import FeatureStore, open_track_array
from mrnet.store.shardwrite import array_metadata

#: Most bytes read at once when checksumming a track: a track up to this size is one read (one request
#: for its whole shard on object storage); a larger one is read a few whole layers at a time, chunk by
#: chunk. Memory is about ``workers x BLOCK_BYTES`` at most.
BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Problem:
    """One thing wrong: with the track it concerns (``None`` for the store as a whole)."""

    what: str
    track_id: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.track_id} (features/{self.key}): {self.what}" if self.key else self.what


@dataclass
class VerifyReport:
    """What ``verify_store`` checked and found; ``ok`` when nothing is wrong."""

    store: str
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong (e.g. unreferenced arrays)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "ok": self.ok,
            "checked": self.checked,
            "problems": [asdict(p) for p in self.problems],
            "notes": self.notes,
        }


def verify_store(location: Location, *, workers: int = 4, on_track: Callable[[], None] | None = None) -> VerifyReport:
    """Check the store's metadata against its integrity record, then every ``done`` track; ``on_track``
    is called once per track checked (progress). Damage that stops the store from opening is a finding."""
    report = VerifyReport(location.url)
    listing = location.files()  # once: on object storage a listing is a request per 1,000 objects
    report.problems += [Problem(what) for what in foreign_files(location, listing)]
    damaged = integrity.problems(location)
    report.problems += [Problem(what) for what in damaged]
    if {what.split(" ")[0] for what in damaged} & set(integrity.COVERED):
        report.notes.append("tracks not checked: the metadata that lists and describes them is damaged (above)")
        return report
    try:
        store = FeatureStore.open(location)
        report.problems += _manifest_problems(store)
        done = store.tracks.filter(pl.col("status") == "done")
    except UserError as err:
        report.problems.append(Problem(str(err)))
        return report
    if _before_integrity(store):
        report.notes.append(
            "written by mrnet 0.1.0, which kept no checksums of the store's metadata: only the tracks are checked"
        )
    _check_tracks(store, done, report, workers, on_track, listing)
    report.problems += [Problem(what) for what in statistics_problems(store)]
    return report


def foreign_files(location: Location, listing: dict[str, int]) -> list[str]:
    """Every symbolic link, every key that is also a folder, and every file the format does not explain;
    ``listing`` is ``location.files()``."""
    linked = links(location)
    found = [
        f"{rel} is a symbolic link (to {os.readlink(os.path.join(location.url, rel))}): mrnet never writes links "
        "into a store and follows none; remove it"
        for rel in linked
    ]
    rels = [rel for rel in listing if not any(rel == link or rel.startswith(link + "/") for link in linked)]
    found += [
        f"object {key!r} is also the folder of {longer!r}: not written by mrnet (a copy refuses it)"
        for key, longer in prefix_clashes(rels)
    ]
    found += [
        f"{rel}: a file the store format does not explain (not written by mrnet; a copy refuses it)"
        for rel in unexplained(rels)
    ]
    return found


def statistics_problems(store: FeatureStore) -> list[str]:
    """What is wrong with ``manifest/statistics.{json,npz}`` (``mrnet-store stats`` rewrites them)."""
    fix = f"recompute them with: mrnet-store stats {store.location.url}"
    try:
        groups = statistics.read(store.location)
    except ValueError as err:
        return [f"{err}; {fix}"]
    if groups is None:
        return []
    p = store.provenance
    shape = (p.channels, len(p.layers), p.dim)
    wrong = [key for key, sums in groups.items() if sums.sum.shape != shape or sums.sumsq.shape != shape]
    if wrong:
        return [
            f"{statistics.ARRAYS}: group {wrong[0]} has sums of shape {groups[wrong[0]].sum.shape}, the store's features are {shape}; {fix}"
        ]
    return []


def _check_tracks(
    store: FeatureStore, done: pl.DataFrame, report: VerifyReport, workers: int, on_track, listing: dict[str, int]
) -> None:
    """Every done track's array, shape, shard and checksum; unreferenced arrays and leftovers (in ``listing``,
    the store's files) as notes."""
    objects = {rel: size for rel, size in listing.items() if rel.startswith("features/")}
    for rel in sorted(objects):
        try:
            check_key(rel)
        except UserError:
            report.problems.append(
                Problem(f"object {rel!r} has a key that leaves the store's root (a copy would refuse it)")
            )
            del objects[rel]
    zstore = store.location.zarr_store(read_only=True)  # one client: Zarr runs all I/O on its own event loop
    rows = done.select("track_id", "key", "frames", "checksum").iter_rows(named=True)

    def check(row: dict) -> list[Problem]:
        try:
            return [Problem(what, row["track_id"], row["key"]) for what in check_track(store, row, objects, zstore)]
        finally:
            if on_track:
                on_track()

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for found in pool.map(check, rows):
            report.checked += 1
            report.problems += found
    temporary = sorted(rel for rel in listing if is_temporary(rel))
    if temporary:
        report.notes.append(
            f"{len(temporary)} temporary file(s) of an interrupted write (harmless; the next mrnet-extract run "
            f"or mrnet-store repair removes them): {', '.join(temporary[:5])}{' ...' if len(temporary) > 5 else ''}"
        )
    arrays = {name.split("/")[1] for name in objects if name.count("/") >= 2 and not is_temporary(name)}
    orphans = sorted(arrays - set(done["key"].to_list()))
    if orphans:
        report.notes.append(
            f"{len(orphans)} array(s) under features/ that no done track names (left by failed or re-run tracks; "
            f"harmless): {', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}"
        )


def check_track(store: FeatureStore, row: dict, objects: dict[str, int], zstore: zarr.abc.store.Store) -> list[str]:
    """What is wrong with one done track (empty if nothing); ``objects`` is ``Location.files("features")``."""
    key, p = row["key"], store.provenance
    if f"features/{key}/zarr.json" not in objects:
        return [f"array missing (no features/{key}/zarr.json)"]
    try:
        arr, raw = open_track_array(store.location, key, zstore)
    except Exception as err:  # any failure to open is what we report
        return [f"array metadata unreadable: {type(err).__name__}: {err}"]
    expected = (p.channels, len(p.layers), row["frames"], p.dim)
    wrong = []
    if row["frames"] is None or row["checksum"] is None:
        wrong.append("manifest row is done but has no frames or checksum")
    if tuple(arr.shape) != expected:
        wrong.append(f"shape {tuple(arr.shape)}, manifest and provenance say {expected}")
    if str(arr.dtype) != p.dtype:
        wrong.append(f"dtype {arr.dtype}, provenance says {p.dtype}")
    missing = [k for k in shard_keys(arr) if f"features/{key}/{k}" not in objects]
    if missing:
        wrong.append(f"shard object missing: features/{key}/{missing[0]} (its frames would read as zeros)")
    if wrong:
        return wrong
    changed = metadata_differences(store, raw, tuple(arr.shape))
    if changed:
        return [f"features/{key}/zarr.json differs from what mrnet writes for this track ({', '.join(changed)})"]
    try:
        crc = streamed_checksum(arr)
    except Exception as err:  # a codec or shard-index error names the damage
        return [f"data unreadable: {type(err).__name__}: {err}"]
    if crc != row["checksum"]:
        return [f"checksum mismatch: manifest {row['checksum']}, stored data {crc}"]
    return []


def metadata_differences(store: FeatureStore, raw: bytes, shape: tuple[int, ...]) -> list[str]:
    """Fields of a track's ``zarr.json`` (its bytes, ``raw``) that differ from what ``StoreWriter`` writes for
    its shape and the store's settings; any changed byte that changes a field (what a reader gets) shows here."""
    p = store.provenance
    expected, _ = array_metadata(
        shape, p.dtype, int(p.extraction.get("chunk_frames", 100)), p.extraction.get("codec", "none")
    )
    try:
        actual = json.loads(raw)
    except ValueError:
        return ["not valid JSON"]
    return [name for name, value in json.loads(expected).items() if actual.get(name) != value] + [
        name for name in actual if name not in json.loads(expected)
    ]


def shard_keys(arr: zarr.Array) -> list[str]:
    """Storage keys of every shard of ``arr`` (one, ``c/0/0/0/0``, for arrays written by StoreWriter)."""
    grid = [range(-(-size // step)) for size, step in zip(arr.shape, arr.shards or arr.chunks)]
    return [arr.metadata.encode_chunk_key(coords) for coords in itertools.product(*grid)]


def streamed_checksum(arr: zarr.Array) -> str:
    """``format.checksum(arr[...])`` without holding the whole array, ``BLOCK_BYTES`` at a time."""
    return integrity.streamed_checksum(
        lambda c, first, stop: np.asarray(arr[c, first:stop]), tuple(arr.shape), arr.dtype.itemsize, BLOCK_BYTES
    )


def _before_integrity(store: FeatureStore) -> bool:
    """Whether the store was written by mrnet 0.1.0, before stores kept an integrity record."""
    return store.provenance.versions.get("mrnet", "0.1.0") == "0.1.0" and not store.location.exists(integrity.INTEGRITY)


def _manifest_problems(store: FeatureStore) -> list[Problem]:
    """Store-level problems: no final manifest, genre table missing, summary disagreeing, bad done rows."""
    loc, problems = store.location, []
    if store.finalized and not loc.exists(integrity.INTEGRITY) and not _before_integrity(store):
        problems.append(Problem(f"{integrity.INTEGRITY} missing: the checksums of the store's metadata are gone"))
    if not store.finalized:
        problems.append(
            Problem(
                "manifest/tracks.parquet missing: extraction not finished or copy incomplete (checking journal rows)"
            )
        )
    elif not loc.exists("manifest/genres.parquet"):
        problems.append(Problem("manifest/genres.parquet missing"))
    tracks = store.tracks
    summary = store.summary()
    if summary:
        counted = status_counts(tracks)
        for name, n in counted.items():
            if summary.get(name, n if name == "pending" else None) != n:  # stores before 0.2 did not count pending
                problems.append(Problem(f"manifest/summary.json says {name}={summary.get(name)}, manifest has {n}"))
    done = tracks.filter(pl.col("status") == "done")
    for key in done.filter(pl.col("key").is_duplicated())["key"].unique().sort().to_list():
        problems.append(Problem(f"array key {key!r} is named by more than one done track"))
    return problems
