"""The worker side of extraction: one work unit in, its tracks' features written and journaled.

A work unit is a few tracks. ``process_unit`` does all of one unit (load each file, compute its
features, and hand them to ``StoreWriter.write_unit``, which writes one shard per track, their sums,
then the unit's journal entry) and is the same function in this process, on a local Dask cluster
(``--gpus``/``--workers``) and on a remote one. The store journals a unit only after every one of its
tracks is written, so a run killed at any moment loses at most the units in flight, and a rerun does
only what no journal names.

What a worker keeps between units lives here too: its engine (the model loads once per process, not
once per unit) and its I/O thread pool.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrnet.core.errors import UserError, as_user_error
from mrnet.core.machine import available_cores
from mrnet.extract import audio
from mrnet.extract.config import ExtractConfig
from mrnet.extract.engines import Engine, engine_for_run
from mrnet.store import Location, Provenance, StoreWriter
from mrnet.store.writer import Track


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


@dataclass(frozen=True)
class UnitContext:
    """What a worker needs besides the unit; sent once per unit to Dask workers (small, picklable)."""

    config: ExtractConfig
    root: str  # the dataset's root folder, as the workers see it
    source: str  # the dataset's Scan.source: "audio", or the shipped-array engine's name
    location: Location  # the store
    provenance: Provenance  # what the store holds; every write is checked against it


# --- what a worker process keeps ------------------------------------------------------------------
_ENGINES: dict[str, Engine] = {}
_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
_DEFAULT_THREADS: list[int] = []


def _engine_key(ctx: UnitContext) -> str:
    return json.dumps([ctx.source, ctx.config.to_json()], sort_keys=True)


def worker_engine(ctx: UnitContext) -> Engine:
    """This process's engine for the run, built once per worker (not once per unit)."""
    with _LOCK:
        _set_torch_threads(ctx.config.threads)
        key = _engine_key(ctx)
        if key not in _ENGINES:
            _ENGINES[key] = engine_for_run(ctx.config, ctx.source)
        return _ENGINES[key]


def adopt_engine(ctx: UnitContext, engine: Engine) -> None:
    """Let units of this run in this process use ``engine`` (the client already built it)."""
    with _LOCK:
        _ENGINES[_engine_key(ctx)] = engine


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


def io_pool(threads: int = 0, *, processes: int = 1) -> ThreadPoolExecutor:
    """This process's pool for loading and writing, made once. ``threads`` 0: the cores this process
    may use, shared among the ``processes`` extraction workers on this machine (at least 2)."""
    if threads <= 0:
        threads = max(2, available_cores() // max(1, processes))
    with _LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="mrnet-io")
        return _POOLS[threads]


def local_processes(cfg: ExtractConfig) -> int:
    """Extraction worker processes this run starts on this machine (a remote cluster's: 1 each)."""
    if cfg.scheduler:
        return 1
    return max(len(cfg.gpus), cfg.workers, 1)


# --- one unit -------------------------------------------------------------------------------------
def process_unit(unit: Unit, ctx: UnitContext) -> UnitResult:
    """Extract, write and journal one unit. Per-track problems become failed rows; others raise, and a
    condition a user can fix (no credentials for the store on this worker, no permission, a full disk)
    raises a ``UserError`` naming the worker."""
    try:
        return _process_unit(unit, ctx)
    except Exception as err:
        user, worker = as_user_error(err), dask_worker()
        if user is None or isinstance(err, UserError) or worker is None:
            raise
        raise UserError(
            f"Dask worker {worker} on {socket.gethostname()}: {user} A worker reads credentials from its own "
            "environment (AWS_* variables, ~/.aws); --storage-options JSON is sent to it with every unit."
        ) from err


def dask_worker() -> str | None:
    """The address of the Dask worker running this code, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def _process_unit(unit: Unit, ctx: UnitContext) -> UnitResult:
    """What ``process_unit`` does.

    The unit's files are loaded, and their features written, on this process's I/O thread pool
    (``io_pool``): libsndfile, libsoxr, NumPy and file writes release the GIL, so a unit's CPU work
    spreads over the cores while the model works on another unit. Rows keep the unit's order.
    """
    start = time.perf_counter()
    cfg = ctx.config
    engine = worker_engine(ctx)
    writer = StoreWriter(ctx.location, ctx.provenance)
    pool = io_pool(cfg.io_threads, processes=local_processes(cfg))
    loaded = list(pool.map(lambda row: _load(row, ctx.root, engine), unit.rows))
    budget = cfg.batch_size * cfg.window_seconds * 2  # audio seconds in memory at once
    stored = writer.write_unit(unit.id, _computed(loaded, budget, engine), pool=pool)
    seconds = stored.frames / writer.provenance.frame_rate
    return UnitResult(unit.id, stored.rows, seconds, stored.bytes_written, time.perf_counter() - start)


def _computed(loaded: list, budget_seconds: float, engine: Engine) -> Iterator[Sequence[Track]]:
    """The unit's tracks for the store writer, a group at a time: each readable group's features as
    it is asked for them (so memory follows the batch size), then the tracks that could not be loaded."""
    for group in _groups(loaded, budget_seconds, engine):
        yield [(dict(row, **info), result) for (row, _, info), result in zip(group, _features(group, engine))]
    unreadable = [
        (dict(row, frames=None, checksum=None, **info), data)
        for row, data, info in loaded
        if isinstance(data, Exception)
    ]
    if unreadable:
        yield unreadable


_NO_SOURCE = {"duration": None, "sample_rate": None, "channels": None, "warning": None}


def _load(row: dict, root: str, engine: Engine) -> tuple[dict, np.ndarray | Exception, dict]:
    """(row, the engine's input or the exception, what the source file was) for one track."""
    path = Path(root) / row["path"]
    try:
        item, info = engine.load(path)
        return (
            row,
            item,
            {
                "duration": info.duration,
                "sample_rate": info.sample_rate,
                "channels": info.channels,
                "warning": info.warning,
            },
        )
    except Exception as err:  # noqa: BLE001 - any failure to load one file fails that track; the run goes on
        return row, err if isinstance(err, audio.AudioError) else audio.AudioError(f"{path}: {err}"), _NO_SOURCE


def _groups(loaded: list, budget_seconds: float, engine: Engine) -> Iterable[list]:
    """Readable tracks in groups of bounded audio length, so memory follows the batch size."""
    group: list = []
    total = 0.0
    for item in loaded:
        data = item[1]
        if isinstance(data, Exception):
            continue
        length = engine.seconds(data)
        if group and total + length > budget_seconds:
            yield group
            group, total = [], 0.0
        group.append(item)
        total += length
    if group:
        yield group


def _features(group: list, engine: Engine) -> list:
    """Features of a group's tracks; a track that fails is an ``AudioError`` in its place.

    Whatever one track raises (too short for a frame, a library's own error) fails that track only:
    the group is done again one track at a time to find it, and the run goes on. A track that failed
    once fails the same way on every rerun, so letting it stop the run would leave a store that can
    never be finished.
    """
    try:
        return engine.extract([data for _, data, _ in group])
    except Exception:  # noqa: BLE001 - isolate the track below; each failure is recorded with its error
        out: list[np.ndarray | audio.AudioError] = []
        for row, data, _ in group:
            try:
                out.append(engine.extract([data])[0])
            except Exception as err:  # noqa: BLE001
                out.append(
                    audio.AudioError(
                        f"{row['path']}: {type(err).__name__ + ': ' if not isinstance(err, ValueError) else ''}{err}"
                    )
                )
        return out
