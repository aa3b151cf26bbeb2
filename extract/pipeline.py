"""The client side of extraction: scan a dataset, describe the store, plan work units, run them, finalize.

``run(cfg)`` is what ``mrnet-extract`` calls. It scans the dataset into a manifest, builds the
run's engine once to learn what the store will hold (its provenance), creates or reopens the store,
cuts the tracks no journal names into work units, hands them to ``executors.execute`` (which runs
``worker.process_unit`` here or on Dask workers), and finally merges the journal into the manifest
that travels with the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import polars as pl

from mrnet.core.machine import check_gpu_ids
from mrnet.extract.config import ExtractConfig, manifest_folder
from mrnet.extract.datasets import Scan, scan
from mrnet.extract.datasets.folds import thin_classes
from mrnet.extract.engines import Engine, engine_for_run
from mrnet.extract.executors import execute
from mrnet.extract.outputs import OWNER, check_chunk_memory, check_outputs, owner_bytes
from mrnet.extract.worker import Unit, UnitContext, UnitResult, adopt_engine
from mrnet.manifests.schema import TRACKS, extra_columns, validate
from mrnet.store import Location, Provenance, StoreWriter
from mrnet.store.location import parquet_bytes
from mrnet.store.ownership import discard_new

RESULT_COLUMNS = ["duration", "sample_rate", "channels", "frames", "checksum", "status", "error", "warning"]


@dataclass
class RunSummary:
    store: str
    tracks: pl.DataFrame
    audio_seconds: float
    bytes_written: int
    seconds: float
    skipped: int  # already done before this run
    statistics: str = ""  # why the store has no feature statistics ("" when it has them)

    @property
    def failed(self) -> pl.DataFrame:
        return self.tracks.filter(pl.col("status") == "failed")

    @property
    def nothing_extracted(self) -> str:
        """Why the store holds no track's features ("" when it holds some)."""
        if (self.tracks["status"] == "done").any():
            return ""
        if self.tracks.height == 0:
            return "the run selected no track (--limit 0?)"
        return f"all {self.tracks.height} tracks failed; each one's error is in the store's manifest (mrnet-store info {self.store})"

    @property
    def warned(self) -> pl.DataFrame:
        """Done tracks kept with a warning (e.g. decoded far shorter than the file declares)."""
        return self.tracks.filter((pl.col("status") == "done") & pl.col("warning").is_not_null())


def run(
    cfg: ExtractConfig,
    *,
    on_scan: Callable[[Scan], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_unit: Callable[[UnitResult], None] | None = None,
) -> RunSummary:
    """Extract ``cfg.dataset`` into ``cfg.store``, resuming whatever an earlier run finished."""
    began = time.perf_counter()
    found = scan_dataset(cfg)
    if on_scan:
        on_scan(found)
    engine = run_engine(cfg, found)
    prov = provenance(engine, cfg, found)
    location = Location.parse(cfg.store, cfg.storage_options or None)  # None: $MRNET_STORAGE_OPTIONS applies
    check_outputs(cfg, location, found.root)
    check_chunk_memory(cfg, prov)
    writer = StoreWriter.open(location, prov, overwrite=cfg.overwrite)
    try:
        write_manifests(
            manifest_folder(cfg), found.tracks, found.genres, owner=owner_bytes(location, cfg.dataset, found.root)
        )
    except BaseException:
        # refused before any work: leave no store behind (store/ownership.py); a store it created, it holds the lock of
        if writer.created and writer.lock is not None:
            discard_new(location, writer.lock)
        else:
            writer.close()
        raise
    try:
        return _extract(cfg, found, engine, writer, began=began, on_start=on_start, on_unit=on_unit)
    finally:
        writer.close()


def _extract(
    cfg: ExtractConfig, found: Scan, engine: Engine, writer: StoreWriter, *, began: float, on_start, on_unit
) -> RunSummary:
    """The units no journal names, run while this process holds the store's writer lock; then finalize."""
    location = writer.location
    journal = writer.journal()
    finished = journal.filter(pl.col("status") == "done") if cfg.retry_failed else journal
    todo = found.tracks.filter(
        (pl.col("status") == "pending") & ~pl.col("track_id").is_in(finished["track_id"].implode())
    )
    units = plan_units(todo, cfg.unit_size, datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f"))
    ctx = UnitContext(cfg, str(found.root), found.source, location, writer.provenance)
    adopt_engine(ctx, engine)  # in-process runs use the engine loaded here
    previously = found.tracks.filter(pl.col("track_id").is_in(finished["track_id"].implode())).height
    if on_start:
        on_start(previously, todo.height)
    results = execute(units, ctx, on_unit=on_unit)
    tracks = merge_results(found.tracks, writer.journal())
    writer.finalize(tracks, found.genres)
    statistics_note = (
        writer.record_statistics(tracks) if (tracks["status"] == "done").any() else ""
    )  # nothing to add up
    write_manifests(manifest_folder(cfg), tracks, found.genres)
    return RunSummary(
        store=location.url,
        tracks=tracks,
        audio_seconds=sum(r.audio_seconds for r in results),
        bytes_written=sum(r.bytes_written for r in results),
        seconds=time.perf_counter() - began,
        skipped=previously,
        statistics=statistics_note,
    )


def scan_dataset(cfg: ExtractConfig) -> Scan:
    """The dataset's manifest as the reader finds it, cut to ``--limit`` tracks."""
    result = scan(
        cfg.dataset,
        cfg.root,
        labels=cfg.labels,
        labeling=cfg.labeling,
        folds=cfg.folds,
        seed=cfg.seed,
        split_files=cfg.split_files,
        fold_files=list(cfg.fold_files) or None,
        tags=cfg.tags,
        keep_untagged=cfg.keep_untagged,
        label_column=cfg.label_column,
    )
    if cfg.limit is not None:
        result = limited(result, cfg.limit, seed=cfg.seed)
    if result.task == "single-label":
        result = replace(result, notes=(*result.notes, *thin_classes(result.tracks)))
    return result


def limited(found: Scan, n: int, *, seed: int = 0) -> Scan:
    """``found`` cut to a sample of ``n`` tracks that keeps every label in it: tracks are taken from each
    genre in turn (or at random for a multi-label task), in a seeded order; a note says what was taken."""
    if n >= found.tracks.height:
        return found
    key = "genre" if found.task == "single-label" else None
    shuffled = found.tracks.sample(fraction=1.0, shuffle=True, seed=seed).with_row_index("_order")
    if key:
        shuffled = shuffled.with_columns(_turn=pl.int_range(pl.len()).over(key)).sort("_turn", key, "_order")
    picked = shuffled.head(n).drop("_order", "_turn", strict=False).sort("track_id")
    what = "a random sample"
    if key:
        counts = picked.group_by(key).len().sort(key)
        what = "taken from each genre in turn: " + ", ".join(f"{g} {c}" for g, c in counts.iter_rows())
    note = f"--limit {n}: {n} of {found.tracks.height} tracks, {what}"
    return replace(found, tracks=picked, notes=(*found.notes, note))


def run_engine(cfg: ExtractConfig, found: Scan) -> Engine:
    """The run's engine, built once here to learn what the store will hold. With Dask workers the
    client only needs its description, so it stays off the GPUs (each worker builds its own)."""
    check_gpu_ids(
        cfg.gpus,
        given=f"--gpus {','.join(map(str, cfg.gpus))}",
        fix="List existing ids, or use --workers N to run on CPU.",
    )
    return engine_for_run(cfg, found.source, device="cpu" if (cfg.gpus or cfg.workers) else None)


def provenance(engine: Engine, cfg: ExtractConfig, found: Scan) -> Provenance:
    """The store's self-description: what the engine computes, how it is stored, which dataset."""
    meta = engine.describe()
    return Provenance(
        feature=engine.feature,
        layers=list(engine.layers),
        dim=int(engine.dim),
        frame_rate=float(engine.frame_rate),
        channels=engine.channels,
        dtype=cfg.dtype,
        sample_rate=engine.sample_rate,
        model=meta["model"],
        model_revision=meta["model_revision"],
        dataset=cfg.dataset,
        labeling=found.labeling,
        task=found.task,
        extraction=dict(
            meta["extraction"],
            codec=cfg.codec,
            chunk_frames=cfg.chunk_frames,
            **({"dataset_source": found.origin} if found.origin else {}),
        ),
        versions=package_versions(),
    )


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide the features, as the store records them."""
    out = {}
    for name in ("mrnet", "torch", "torchaudio", "transformers", "zarr", "numpy", "polars", "soundfile", "soxr"):
        try:
            out[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing package is recorded as such
            out[name] = "not installed"
    return out


def plan_units(todo: pl.DataFrame, size: int, stamp: str) -> list[Unit]:
    rows = todo.to_dicts()
    return [Unit(f"{stamp}-{i // size:06d}", tuple(rows[i : i + size])) for i in range(0, len(rows), size)]


def merge_results(tracks: pl.DataFrame, journal: pl.DataFrame) -> pl.DataFrame:
    """The scanned manifest with each journaled track's extraction results filled in."""
    results = journal.select(["track_id", *RESULT_COLUMNS])
    merged = tracks.update(results, on="track_id", how="left")
    return validate(merged.select(*TRACKS.names(), *extra_columns(merged)), TRACKS, name="tracks")


def write_manifests(folder: Path, tracks: pl.DataFrame, genres: pl.DataFrame, *, owner: bytes | None = None) -> None:
    """The store's manifests under ``manifests/<store name>/`` (atomic writes), and the record of whose
    they are (``outputs.OWNER``) when given."""
    here = Location.parse(folder)
    if owner is not None:
        here.write_bytes(OWNER, owner)
    here.write_bytes("tracks.parquet", parquet_bytes(tracks))
    here.write_bytes("genres.parquet", parquet_bytes(genres))


__all__ = ["RunSummary", "provenance", "run", "scan_dataset"]
