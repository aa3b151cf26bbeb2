"""``mrnet-extract --dry-run``: what a run would cost, before it starts. Nothing is written."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mrnet.extract import audio
from mrnet.extract.config import ExtractConfig
from mrnet.extract.engines import AUDIO, Engine
from mrnet.extract.pipeline import provenance, run_engine, scan_dataset
from mrnet.manifests.schema import status_counts
from mrnet.store import Location
from mrnet.store.writer import read_journal


@dataclass
class Estimate:
    tracks: int
    unreadable: int
    audio_hours: float
    store_bytes: int
    bytes_per_audio_second: float
    seconds: float | None  # None when no track could be timed
    calibration: str
    already_done: int
    notes: tuple[str, ...] = ()  # the scan's notes: bad files, files left out, --limit's sample


def estimate(cfg: ExtractConfig, *, calibrate_tracks: int = 2, threads: int = 8) -> Estimate:
    """Tracks, audio hours, store size and time of ``cfg``'s run, timing the engine on a few tracks."""
    found = scan_dataset(cfg)
    engine = run_engine(cfg, found)
    prov = provenance(engine, cfg, found)
    pending = found.tracks.filter(pl.col("status") == "pending")
    paths = [Path(found.root) / p for p in pending["path"]]
    with ThreadPoolExecutor(threads) as pool:
        durations = list(pool.map(lambda p: _duration(engine, p), paths))
    known = [d for d in durations if d is not None]
    seconds_audio = float(sum(known))
    per_second = prov.frame_rate * prov.channels * len(prov.layers) * prov.dim * np.dtype(prov.dtype).itemsize
    readable = [p for p, d in zip(paths, durations) if d is not None][:calibrate_tracks]
    timing, note = _time(engine, readable, seconds_audio, shipped=found.source != AUDIO, tracks=len(paths))
    return Estimate(
        tracks=found.tracks.height,
        unreadable=len(durations) - len(known) + status_counts(found.tracks)["failed"],
        audio_hours=seconds_audio / 3600,
        store_bytes=int(seconds_audio * per_second),
        bytes_per_audio_second=per_second,
        seconds=timing,
        calibration=note,
        already_done=_existing_done(cfg),
        notes=found.notes,
    )


def _time(
    engine: Engine, readable: list[Path], seconds_audio: float, *, shipped: bool, tracks: int
) -> tuple[float | None, str]:
    """Estimated seconds for the whole run and how the estimate was made."""
    if shipped:
        return tracks * 0.002, "shipped arrays are copied, not computed (estimate: ~2 ms per track)"
    if not readable:
        return None, "not timed (no readable track)"
    start = time.perf_counter()
    items = [engine.load(p)[0] for p in readable]
    engine.extract(items)
    rate = sum(engine.seconds(x) for x in items) / (time.perf_counter() - start)
    return seconds_audio / rate, f"timed on {len(readable)} tracks here: {rate:.1f} audio-s/s in one process"


def _duration(engine: Engine, path: Path) -> float | None:
    try:
        return engine.probe(path)
    except (audio.AudioError, OSError, ValueError):
        return None


def _existing_done(cfg: ExtractConfig) -> int:
    loc = Location.parse(cfg.store, cfg.storage_options or None)
    if not loc.exists("zarr.json"):
        return 0
    return status_counts(read_journal(loc))["done"]
