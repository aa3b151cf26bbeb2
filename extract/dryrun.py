"""``mrnet-extract --dry-run``: what a run would cost, before it starts. Nothing is written, nothing downloaded.

An encoder (``--features wavlm`` or ``ssl``) whose weights are on this machine (its folder, or the hub
cache) is loaded and timed on a few tracks. One whose weights are not is never loaded: the store is
sized from the model's config.json when that is here, and the estimate says what a real run would
download (and when the hub cannot be reached from here, that the real run would stop, and the way out).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.table import Table

from mrnet.core.errors import UserError
from mrnet.extract import audio
from mrnet.extract.config import ExtractConfig
from mrnet.extract.engines import AUDIO, ENCODERS, Engine, check_options, hub
from mrnet.extract.engines.ssl import FALLBACK_RATE
from mrnet.extract.pipeline import provenance, run_engine, scan_dataset
from mrnet.extract.windows import Geometry
from mrnet.manifests.schema import status_counts
from mrnet.store import Location
from mrnet.store.writer import read_journal


@dataclass
class Estimate:
    tracks: int
    unreadable: int
    audio_hours: float
    store_bytes: int | None  # None: not known without the model's config
    bytes_per_audio_second: float | None
    seconds: float | None  # None when no track could be timed
    calibration: str
    already_done: int
    notes: tuple[str, ...] = ()  # the scan's notes: bad files, files left out, --limit's sample


def estimate(cfg: ExtractConfig, *, calibrate_tracks: int = 2, threads: int = 8) -> Estimate:
    """Tracks, audio hours, store size and time of ``cfg``'s run, timing the engine on a few tracks."""
    found = scan_dataset(cfg)
    pending = found.tracks.filter(pl.col("status") == "pending")
    paths = [Path(found.root) / p for p in pending["path"]]
    elsewhere = found.source == AUDIO and cfg.features in ENCODERS and not hub.weights_here(cfg.model, cfg.revision)
    engine = None if elsewhere else run_engine(cfg, found)
    with ThreadPoolExecutor(threads) as pool:
        durations = list(pool.map(lambda p: _duration(engine, p), paths))
    known = [d for d in durations if d is not None]
    seconds_audio = float(sum(known))
    if engine is None:
        check_options(cfg)
        per_second = encoder_bytes_per_second(cfg)
        timing, note = None, not_loaded(cfg)
    else:
        prov = provenance(engine, cfg, found)
        per_second = prov.frame_rate * prov.channels * len(prov.layers) * prov.dim * np.dtype(prov.dtype).itemsize
        readable = [p for p, d in zip(paths, durations) if d is not None][:calibrate_tracks]
        timing, note = _time(engine, readable, seconds_audio, shipped=found.source != AUDIO, tracks=len(paths))
    return Estimate(
        tracks=found.tracks.height,
        unreadable=len(durations) - len(known) + status_counts(found.tracks)["failed"],
        audio_hours=seconds_audio / 3600,
        store_bytes=None if per_second is None else int(seconds_audio * per_second),
        bytes_per_audio_second=per_second,
        seconds=timing,
        calibration=note,
        already_done=_existing_done(cfg),
        notes=found.notes,
    )


def encoder_bytes_per_second(cfg: ExtractConfig) -> float | None:
    """Store bytes per audio second of ``cfg``'s encoder, from its config.json (and, for ``ssl``, its
    preprocessor's sampling rate) on this machine, without its weights; None when the config is not here."""
    config = hub.local_json(cfg.model, "config.json", cfg.revision)
    keys = ("conv_kernel", "conv_stride", "hidden_size", "num_hidden_layers")
    if config is None or any(k not in config for k in keys):
        return None
    total = int(config["num_hidden_layers"]) + 1
    layers = list(cfg.layers or range(total))
    bad = [n for n in layers if not 0 <= n < total]
    if bad:
        raise UserError(f"--layers {bad}: {cfg.model} has hidden states 0..{total - 1}")
    rate = audio.SAMPLE_RATE  # WavLM's
    if cfg.features == "ssl":
        rate = int(
            (hub.local_json(cfg.model, "preprocessor_config.json", cfg.revision) or {}).get("sampling_rate")
            or FALLBACK_RATE
        )
    stride = Geometry.from_convs(list(config["conv_kernel"]), list(config["conv_stride"])).stride
    return rate / stride * cfg.channels * len(layers) * int(config["hidden_size"]) * np.dtype(cfg.dtype).itemsize


def not_loaded(cfg: ExtractConfig) -> str:
    """Why the encoder was not timed, what a real run downloads, and whether it could."""
    note = f"not timed: the weights of {cfg.model} are not on this machine (a dry run downloads nothing); a real run downloads them from {hub.endpoint()}"
    if hub.offline(cfg.model):
        note += ", which cannot be reached from here: it would stop. Use --features mel (no weights needed), or a local directory written by save_pretrained"
    return note


def table(est: Estimate, cfg: ExtractConfig) -> Table:
    """The dry run's answer, as ``mrnet-extract --dry-run`` prints it."""
    workers = max(len(cfg.gpus), cfg.workers, 1)
    out = Table(title=f"mrnet-extract {cfg.dataset} --dry-run (nothing written)", show_header=False)
    out.add_row(
        "tracks", f"{est.tracks} ({est.unreadable} unreadable or missing, {est.already_done} already in {cfg.store})"
    )
    out.add_row("audio", f"{est.audio_hours:.2f} h")
    if est.store_bytes is None or est.bytes_per_audio_second is None:
        out.add_row("store size", f"not known: the config of {cfg.model} is not on this machine")
    else:
        size = (
            f"{est.store_bytes / 1e9:.2f} GB uncompressed ({est.bytes_per_audio_second / 1e6:.3f} MB per audio second)"
        )
        out.add_row("store size", size)
    if est.seconds is None:
        out.add_row("time", est.calibration)
    else:
        out.add_row("time", f"~{est.seconds / workers / 3600:.2f} h with {workers} worker(s); {est.calibration}")
    return out


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


def _duration(engine: Engine | None, path: Path) -> float | None:
    """Seconds of audio in ``path`` (an audio file's header, without an engine)."""
    try:
        return engine.probe(path) if engine is not None else audio.probe(path).duration
    except (audio.AudioError, OSError, ValueError):
        return None


def _existing_done(cfg: ExtractConfig) -> int:
    loc = Location.parse(cfg.store, cfg.storage_options or None)
    if not loc.exists("zarr.json"):
        return 0
    return status_counts(read_journal(loc))["done"]
