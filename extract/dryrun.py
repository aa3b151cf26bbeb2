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
from mrnet.extract.pipeline import build_provenance, scan_dataset


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


def estimate(cfg: ExtractConfig, *, calibrate_tracks: int = 2, threads: int = 8) -> Estimate:
    found = scan_dataset(cfg)
    prov, extractor = build_provenance(cfg, found)
    pending = found.tracks.filter(pl.col("status") == "pending")
    paths = [Path(found.root) / p for p in pending["path"]]
    with ThreadPoolExecutor(threads) as pool:
        durations = list(pool.map(lambda p: _duration(p, found.source), paths))
    known = [d for d in durations if d is not None]
    seconds_audio = float(sum(known))
    per_second = prov.frame_rate * prov.channels * len(prov.layers) * prov.dim * np.dtype(prov.dtype).itemsize
    store = _existing_done(cfg)
    timing, note = None, "not timed (no readable track)"
    readable = [p for p, d in zip(paths, durations) if d is not None][:calibrate_tracks]
    if extractor is not None and readable:
        start, timed = time.perf_counter(), 0.0
        waves = [extractor.load(p)[0] for p in readable]
        extractor.features(waves)
        timed = sum(w.shape[1] for w in waves) / extractor.sample_rate
        rate = timed / (time.perf_counter() - start)
        timing = seconds_audio / rate
        note = f"timed on {len(readable)} tracks here: {rate:.1f} audio-s/s in one process"
    elif extractor is None:
        timing, note = len(paths) * 0.002, "Melon arrays are copied, not computed (estimate: ~2 ms per track)"
    return Estimate(
        tracks=found.tracks.height, unreadable=len(durations) - len(known) + int((found.tracks["status"] == "failed").sum()),
        audio_hours=seconds_audio / 3600, store_bytes=int(seconds_audio * per_second), bytes_per_audio_second=per_second,
        seconds=timing, calibration=note, already_done=store,
    )


def _duration(path: Path, source: str) -> float | None:
    try:
        if source == "mel":
            arr = np.load(path, mmap_mode="r")
            return arr.shape[1] * 256 / 16000
        return audio.probe(path).duration
    except (audio.AudioError, OSError, ValueError):
        return None


def _existing_done(cfg: ExtractConfig) -> int:
    from mrnet.store import Location
    from mrnet.store.writer import read_journal

    loc = Location.parse(cfg.store, cfg.storage_options or None)
    if not loc.exists("zarr.json"):
        return 0
    journal = read_journal(loc)
    return int((journal["status"] == "done").sum()) if journal.height else 0
