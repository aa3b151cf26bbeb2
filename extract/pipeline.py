"""The extraction run: scan a dataset, cut it into work units, extract each unit, journal it, finalize.

A work unit is a few tracks. ``process_unit`` does all of one unit — decode, features, write one shard
per track, then journal the unit — and is the same function in this process, on a local Dask cluster
(``--gpus``/``--workers``) and on a remote one. A unit journals only after every one of its tracks is
written, so a run killed at any moment loses at most the units in flight, and a rerun does only what
no journal names.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import polars as pl

from mrnet.extract import audio
from mrnet.extract.config import ExtractConfig
from mrnet.extract.datasets import Scan, scan
from mrnet.extract.features import Extractor, package_versions
from mrnet.manifests.schema import TRACKS, validate
from mrnet.store import Location, Provenance, StoreWriter, UserError
from mrnet.store.location import parquet_bytes

MELON_MEL = "Melon arena_mel as shipped: 48 bands, 16 kHz, frame 512, hop 256"
RESULT_COLUMNS = ["duration", "sample_rate", "channels", "frames", "checksum", "status", "error"]


@dataclass(frozen=True)
class Unit:
    id: str  # sorts in creation order: <run stamp>-<sequence>
    rows: tuple[dict, ...]


@dataclass
class UnitResult:
    unit: str
    rows: list[dict]
    audio_seconds: float
    bytes_written: int
    seconds: float


@dataclass
class RunSummary:
    store: str
    tracks: pl.DataFrame
    audio_seconds: float
    bytes_written: int
    seconds: float
    skipped: int  # already done before this run

    @property
    def failed(self) -> pl.DataFrame:
        return self.tracks.filter(pl.col("status") == "failed")


# --- the unit of work ----------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitContext:
    """What a worker needs besides the unit: plain data, cheap to send to Dask workers."""

    config: dict  # ExtractConfig.to_json()
    root: str
    source: str  # "audio" | "mel"
    store: str
    storage_options: dict
    provenance: dict


_EXTRACTORS: dict[str, Extractor] = {}
_EXTRACTOR_LOCK = threading.Lock()


def worker_extractor(ctx: UnitContext) -> Extractor | None:
    """The extractor of this process, loaded once per worker (not once per task)."""
    if ctx.source == "mel":
        return None
    key = json.dumps(ctx.config, sort_keys=True)
    with _EXTRACTOR_LOCK:
        _set_torch_threads(int(ctx.config.get("threads") or 0))
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = Extractor.from_config(config_from_json(ctx.config))
        return _EXTRACTORS[key]


_DEFAULT_THREADS: list[int] = []


def _set_torch_threads(threads: int) -> None:
    """Torch's intra-op threads for this run: ``threads``, or (0) the count torch chose at start-up.
    Always set, so an earlier run in this process with ``--threads N`` does not leak into this one:
    the thread count decides the order of float reductions, hence the features' last bits."""
    import torch

    if not _DEFAULT_THREADS:
        _DEFAULT_THREADS.append(torch.get_num_threads())
    wanted = threads or _DEFAULT_THREADS[0]
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def process_unit(unit: Unit, ctx: UnitContext) -> UnitResult:
    """Extract, write and journal one unit. Per-track problems become failed rows; others raise.

    The unit's tracks are decoded, and their features written, on this process's I/O thread pool
    (``io_pool``): libsndfile, libsoxr, NumPy and file writes release the GIL, so a unit's CPU work
    spreads over the cores while the model works on another unit. Rows keep the unit's order.
    """
    start = time.perf_counter()
    extractor = worker_extractor(ctx)
    writer = StoreWriter(Location.parse(ctx.store, ctx.storage_options or None), Provenance.from_json(ctx.provenance, where=ctx.store))
    pool = io_pool(int(ctx.config.get("io_threads") or 0), processes=_local_processes(ctx.config))
    loaded = list(pool.map(lambda row: _load(row, ctx, extractor), unit.rows))
    rows, seconds, written = [], 0.0, 0
    budget = int(ctx.config["batch_size"]) * float(ctx.config["window_seconds"]) * 2  # audio seconds in memory at once
    for group in _groups(loaded, budget, extractor):
        feats = _features(group, extractor)
        writes = [pool.submit(_write, writer, row, result, info) for (row, _, info), result in zip(group, feats)]
        for future in writes:
            row, nbytes = future.result()
            rows.append(row)
            if row["status"] == "done":
                written += nbytes
                seconds += row["frames"] / writer.provenance.frame_rate
    for row, data, info in loaded:
        if isinstance(data, Exception):
            rows.append(dict(row, status="failed", error=str(data), frames=None, checksum=None, **info))
    writer.commit_unit(unit.id, pl.DataFrame(rows, schema=TRACKS))
    return UnitResult(unit.id, rows, seconds, written, time.perf_counter() - start)


def _write(writer: StoreWriter, row: dict, result, info: dict) -> tuple[dict, int]:
    """Write one track's features: its journal row, and the bytes written (for the summary)."""
    if isinstance(result, Exception):
        return dict(row, status="failed", error=str(result), **info), 0
    try:
        crc = writer.write_track(row["key"], result)
    except ValueError as err:  # e.g. values that overflow the stored dtype
        return dict(row, status="failed", error=str(err), **info), 0
    nbytes = result.size * np.dtype(writer.provenance.dtype).itemsize
    return dict(row, status="done", error=None, frames=int(result.shape[2]), checksum=crc, **info), nbytes


_POOLS: dict[int, ThreadPoolExecutor] = {}


def io_pool(threads: int = 0, *, processes: int = 1) -> ThreadPoolExecutor:
    """This process's pool for decoding and writing, made once. ``threads`` 0: the cores this process
    may use, shared among the ``processes`` extraction workers on this machine (at least 2)."""
    if threads <= 0:
        threads = max(2, available_cores() // max(1, processes))
    with _EXTRACTOR_LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="mrnet-io")
        return _POOLS[threads]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 2


def _local_processes(config: dict) -> int:
    """Extraction worker processes this run starts on this machine (a remote cluster's: 1 each)."""
    if config.get("scheduler"):
        return 1
    return max(len(config.get("gpus") or ()), int(config.get("workers") or 0), 1)


def _load(row: dict, ctx: UnitContext, extractor: Extractor | None):
    """(row, data or the exception, source info) for one track."""
    path = Path(ctx.root) / row["path"]
    empty = {"duration": None, "sample_rate": None, "channels": None}
    try:
        if extractor is None:  # Melon: (48, T) log-Mel arrays as shipped
            mel = np.load(path)
            if mel.ndim != 2 or mel.shape[0] != 48 or mel.shape[1] == 0:
                raise audio.AudioError(f"{path}: expected a (48, frames) array, found shape {mel.shape}")
            info = {"duration": mel.shape[1] * 256 / 16000, "sample_rate": 16000, "channels": 1}
            return row, mel.T[None, None].astype(np.float32), info
        wave, src = extractor.load(path)
        return row, wave, {"duration": src.duration, "sample_rate": src.sample_rate, "channels": src.channels}
    except (audio.AudioError, OSError, ValueError) as err:
        return row, err if isinstance(err, audio.AudioError) else audio.AudioError(f"{path}: {err}"), empty


def _groups(loaded: list, budget_seconds: float, extractor: Extractor | None) -> Iterable[list]:
    """Readable tracks in groups of bounded audio length, so memory follows the batch size."""
    group, total = [], 0.0
    for item in loaded:
        row, data, info = item
        if isinstance(data, Exception):
            continue
        length = data.shape[-1] / 16000 if extractor is not None else 0.0
        if group and total + length > budget_seconds:
            yield group
            group, total = [], 0.0
        group.append(item)
        total += length
    if group:
        yield group


def _features(group: list, extractor: Extractor | None) -> list:
    if extractor is None:
        return [data for _, data, _ in group]
    try:
        return extractor.features([data for _, data, _ in group])
    except ValueError:  # one bad track (e.g. shorter than one frame): redo one by one to isolate it
        out = []
        for row, data, _ in group:
            try:
                out.append(extractor.features([data])[0])
            except ValueError as err:
                out.append(audio.AudioError(f"{row['path']}: {err}"))
        return out


# --- the run -------------------------------------------------------------------------------------
def config_from_json(data: dict) -> ExtractConfig:
    data = dict(data)
    for key in ("root", "labels", "split_files"):
        data[key] = Path(data[key]) if data.get(key) else None
    data["manifests_dir"] = Path(data["manifests_dir"])
    data["fold_files"] = tuple(Path(p) for p in data.get("fold_files", ()))
    for key in ("layers", "gpus"):
        data[key] = tuple(data[key]) if data.get(key) is not None else (None if key == "layers" else ())
    return ExtractConfig(**data)


def scan_dataset(cfg: ExtractConfig) -> Scan:
    result = scan(
        cfg.dataset, cfg.root, labels=cfg.labels, labeling=cfg.labeling, folds=cfg.folds, seed=cfg.seed,
        split_files=cfg.split_files, fold_files=list(cfg.fold_files) or None,
    )
    if result.source == "mel" and cfg.features != "mel":
        raise UserError(f"{cfg.dataset} ships Mel spectrograms only, no audio: use --features mel")
    if cfg.limit is not None:
        result = replace(result, tracks=result.tracks.head(cfg.limit))
    return result


def build_provenance(cfg: ExtractConfig, found: Scan) -> tuple[Provenance, Extractor | None]:
    """The store's self-description; loads the model once here to learn its revision and sizes."""
    if found.source == "mel":
        prov = Provenance(
            feature="mel", layers=[0], dim=48, frame_rate=16000 / 256, channels=1, dtype=cfg.dtype, model=None,
            dataset=cfg.dataset, labeling=found.labeling, versions=package_versions(),
            extraction={"mel": MELON_MEL, "codec": cfg.codec, "chunk_frames": cfg.chunk_frames},
        )
        return prov, None
    check_gpus(cfg.gpus)
    # With Dask workers the client only needs the model's description: keep it off the GPUs.
    extractor = Extractor.from_config(cfg, device="cpu" if (cfg.gpus or cfg.workers) else None)
    prov = extractor.provenance(dataset=cfg.dataset, labeling=found.labeling, dtype=cfg.dtype, codec=cfg.codec, chunk_frames=cfg.chunk_frames)
    return prov, extractor


def check_gpus(gpus: tuple[int, ...]) -> None:
    if not gpus:
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [g for g in gpus if g >= count]
    if missing:
        seen = f"{count} CUDA device(s), ids 0..{count - 1}" if count else "no CUDA device"
        raise UserError(
            f"--gpus {','.join(map(str, gpus))}: this machine has {seen}, so GPU(s) {missing} do not exist. "
            "List existing ids, or use --workers N to run on CPU."
        )


def plan_units(todo: pl.DataFrame, size: int, stamp: str) -> list[Unit]:
    rows = todo.to_dicts()
    return [Unit(f"{stamp}-{i // size:06d}", tuple(rows[i : i + size])) for i in range(0, len(rows), size)]


def run(cfg: ExtractConfig, *, on_scan: Callable[[Scan], None] | None = None, on_start: Callable[[int, int], None] | None = None,
        on_unit: Callable[[UnitResult], None] | None = None) -> RunSummary:
    """Extract ``cfg.dataset`` into ``cfg.store``, resuming whatever an earlier run finished."""
    began = time.perf_counter()
    found = scan_dataset(cfg)
    if on_scan:
        on_scan(found)
    write_manifests(cfg.manifests_dir / cfg.dataset, found.tracks, found.genres)
    prov, extractor = build_provenance(cfg, found)
    location = Location.parse(cfg.store, cfg.storage_options or None)  # None: $MRNET_STORAGE_OPTIONS applies
    writer = StoreWriter.open(location, prov, overwrite=cfg.overwrite)
    journal = writer.journal()
    finished = journal.filter(pl.col("status") == "done") if cfg.retry_failed else journal
    todo = found.tracks.filter((pl.col("status") == "pending") & ~pl.col("track_id").is_in(finished["track_id"].implode()))
    units = plan_units(todo, cfg.unit_size, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f"))
    ctx = UnitContext(cfg.to_json(), str(found.root), found.source, location.url, location.storage_options, writer.provenance.to_json())
    if extractor is not None:
        _EXTRACTORS[json.dumps(ctx.config, sort_keys=True)] = extractor  # in-process runs reuse the loaded model
    previously = found.tracks.filter(pl.col("track_id").is_in(finished["track_id"].implode())).height
    if on_start:
        on_start(previously, todo.height)
    from mrnet.extract.executors import execute

    results = execute(units, ctx, cfg, on_unit=on_unit)
    journal = writer.journal()
    tracks = merge_results(found.tracks, journal)
    writer.finalize(tracks, found.genres)
    write_manifests(cfg.manifests_dir / cfg.dataset, tracks, found.genres)
    return RunSummary(
        store=location.url, tracks=tracks, audio_seconds=sum(r.audio_seconds for r in results),
        bytes_written=sum(r.bytes_written for r in results), seconds=time.perf_counter() - began,
        skipped=previously,
    )


def merge_results(tracks: pl.DataFrame, journal: pl.DataFrame) -> pl.DataFrame:
    """The scanned manifest with each journaled track's extraction results filled in."""
    results = journal.select(["track_id", *RESULT_COLUMNS])
    merged = tracks.update(results, on="track_id", how="left")
    return validate(merged.select(TRACKS.names()), TRACKS, name="tracks")


def write_manifests(folder: Path, tracks: pl.DataFrame, genres: pl.DataFrame) -> None:
    """The dataset's manifests under ``manifests/<dataset>/`` (atomic writes)."""
    here = Location.parse(folder)
    here.write_bytes("tracks.parquet", parquet_bytes(tracks))
    here.write_bytes("genres.parquet", parquet_bytes(genres))
