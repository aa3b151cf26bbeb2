"""Where a run's processes come from: this one, N it starts (``--workers N``, ``--gpus a,b``), torchrun's,
or, for ``--folds all`` with any of those or ``--scheduler``, a Dask cluster running folds side by side.

``train`` and ``resume`` are what ``mrnet-train`` calls; each picks one of these:

- **one process** (the default, ``--workers 1`` or one GPU): ``loop.train`` here;
- **a process group started here**: ``spawn`` starts one process per device (``--workers N``: N CPU
  processes, gloo; ``--gpus a,b``: one per GPU, NCCL), each joins the group and runs ``loop.start``;
  this process checks the run first (``loop.prepare``: every refusal happens here, before a process
  starts), then waits. Ctrl-C reaches every process (it is passed on), they stop after the same
  batch and rank 0 saves the checkpoint. A process that dies (a crash, ``kill -9``) stops the
  others, and the run continues from its last checkpoint with ``--resume``;
- **torchrun** (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set): this process is one rank; it joins the
  group torchrun describes and trains (``torchrun --nproc-per-node 2 --no-python mrnet-train ...``);
- **parallel runs** (``--folds all`` with ``--workers``/``--gpus``/``--scheduler``): ``parallel.train_folds``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queues
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from mrnet.core.errors import UserError
from mrnet.core.machine import available_cores, check_gpu_ids
from mrnet.train import distributed, loop, parallel, seeds
from mrnet.train.config import TrainConfig
from mrnet.train.loop import Interrupted, Reporter
from mrnet.train.models import PROBE, get
from mrnet.train.runs import RunFolder, default_run_dir

ReporterFactory = Callable[[], Reporter]  # picklable (a module-level function): rank 0's reporter in its own process


def processes(cfg: TrainConfig) -> list[str]:
    """The device of each process of one run: ``--gpus`` (each must exist here), ``--workers`` (CPUs),
    or ``[]`` (this process, on ``--device``)."""
    if cfg.gpus:
        listed = ",".join(map(str, cfg.gpus))
        check_gpu_ids(
            cfg.gpus, given=f"--gpus {listed}", fix="Use --workers N for N processes on the CPU, or leave both out."
        )
        if cfg.device not in ("auto", "cuda"):
            raise UserError(f"--gpus {listed} puts one process on each of those GPUs; drop --device {cfg.device}")
        devices = [f"cuda:{g}" for g in cfg.gpus]
    else:
        devices = ["cpu"] * cfg.workers if cfg.workers else []
    if len(devices) > 1 and not (cfg.all_folds and parallel.wanted(cfg)):
        n = len(devices)
        if get(cfg.model).fitting == PROBE:
            raise UserError(
                f"--model {cfg.model} is fitted by scikit-learn in one process; drop --workers/--gpus for it"
            )
        if cfg.batch_size < n or (not cfg.sync_bn and cfg.batch_size < 2 * n):
            raise UserError(
                f"--batch-size {cfg.batch_size} is the global batch, shared by {n} processes: give at least "
                f"{n if cfg.sync_bn else 2 * n}"
                + ("" if cfg.sync_bn else " (per-rank BatchNorm needs 2 items per process)")
            )
    return devices


def train(
    cfg: TrainConfig, *, reporter: Reporter | None = None, reporter_factory: ReporterFactory | None = None
) -> Path | None:
    """Start a run with the processes ``cfg`` asks for; returns its folder (None in a torchrun rank
    other than 0, which has nothing to show)."""
    reporter = reporter or Reporter()
    if cfg.seeds:
        return seeds.train_seeds(
            cfg,
            reporter=reporter,
            train_one=lambda c: train(c, reporter=reporter, reporter_factory=reporter_factory),
            resume_one=lambda path: resume(path, reporter=reporter, reporter_factory=reporter_factory),
        )
    if cfg.all_folds and parallel.wanted(cfg):
        return parallel.train_folds(cfg, reporter=reporter)
    if distributed.under_torchrun():
        _refuse_own_processes(cfg)
        with _torchrun_group(cfg.device):
            cfg = cfg.with_(
                out=distributed.broadcast(str(cfg.out or default_run_dir(cfg.store)))
            )  # rank 0's clock names the folder
            path = loop.train(cfg, reporter=reporter)
            return path if distributed.ranks().main else None
    devices = processes(cfg)
    if len(devices) <= 1:
        return loop.train(cfg.with_(device=devices[0]) if devices else cfg, reporter=reporter)
    if cfg.out is None:
        cfg = cfg.with_(out=str(default_run_dir(cfg.store)))
    cfg, run, _, _ = loop.prepare(cfg, reporter)  # every refusal here, before any process starts
    return spawn(("train", cfg.to_json()), devices, run=run.path, reporter_factory=reporter_factory)


def resume(
    run_dir: Path, *, reporter: Reporter | None = None, reporter_factory: ReporterFactory | None = None, **changes
) -> Path | None:
    """Continue a run (``changes`` as ``loop.resume`` takes them) with the processes its config, or
    ``changes``, asks for; a ``--folds all`` run with a scale option continues its folds side by side."""
    reporter = reporter or Reporter()
    cfg = loop.resumed_config(RunFolder(Path(run_dir)), **dict(changes))
    if cfg.seeds:
        return seeds.train_seeds(
            cfg.with_(out=str(run_dir)),
            reporter=reporter,
            resume=True,  # where the folder is now
            train_one=lambda c: train(c, reporter=reporter, reporter_factory=reporter_factory),
            resume_one=lambda path: resume(path, reporter=reporter, reporter_factory=reporter_factory, **changes),
        )
    if cfg.all_folds and parallel.wanted(cfg):
        return parallel.train_folds(cfg, reporter=reporter, resume=True)
    if distributed.under_torchrun():
        _refuse_own_processes(cfg)
        with _torchrun_group(cfg.device):
            path = loop.resume(run_dir, reporter=reporter, **changes)
            return path if distributed.ranks().main else None
    devices = processes(cfg)
    if len(devices) <= 1:
        return loop.resume(run_dir, reporter=reporter, **{**changes, **({"device": devices[0]} if devices else {})})
    return spawn(("resume", str(run_dir), changes), devices, run=Path(run_dir), reporter_factory=reporter_factory)


def _refuse_own_processes(cfg: TrainConfig) -> None:
    if cfg.workers not in (None, 1) or cfg.gpus:
        raise UserError(
            "under torchrun every process is started by torchrun (--nproc-per-node); drop --workers and --gpus"
        )


@contextmanager
def _torchrun_group(device: str) -> Iterator[None]:
    distributed.init(distributed.torchrun_device(device))
    try:
        yield
    finally:
        distributed.close()


# --- processes started here ---------------------------------------------------------------------


def spawn(job: tuple, devices: list[str], *, run: Path, reporter_factory: ReporterFactory | None = None) -> Path:
    """Run ``job`` (``("train", cfg_json)`` or ``("resume", run_dir, changes)``) on one process per
    device, as one process group, and wait for all of them; raise what they raised (``UserError``,
    ``Interrupted``), or a ``UserError`` naming a process that died without a result."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    address = f"tcp://127.0.0.1:{_free_port()}"
    threads = max(1, available_cores() // len(devices))
    procs = [
        ctx.Process(
            target=_child,
            name=f"mrnet-train-rank{rank}",
            args=(rank, len(devices), address, device, job, reporter_factory if rank == 0 else None, threads, results),
        )
        for rank, device in enumerate(devices)
    ]
    with _passing_ctrl_c_on(procs):
        for p in procs:
            p.start()
        outcome, dead = _wait(procs, results)
    if dead is not None:
        rank, code = dead
        how = f"killed by signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exit status {code}"
        raise UserError(
            f"training process {rank} of {len(devices)} ended without finishing ({how}); the others were stopped. "
            f"The run keeps its last checkpoint: continue it with mrnet-train --resume {run}"
        )
    kinds = {kind for kind, _ in outcome.values()}
    first = lambda kind: next(payload for r, (k, payload) in sorted(outcome.items()) if k == kind)  # noqa: E731
    if "error" in kinds:
        raise RuntimeError(f"a training process failed:\n{first('error')}")
    if "user_error" in kinds:
        raise UserError(first("user_error"))
    if "interrupted" in kinds:
        epoch, step = first("interrupted")
        raise Interrupted(run, epoch, step)
    if "keyboard" in kinds:
        raise KeyboardInterrupt
    return Path(outcome[0][1])


def _child(
    rank: int, world: int, address: str, device: str, job: tuple, reporter_factory, threads: int, results
) -> None:
    """One process of the group: join it, run the job, put ``(rank, kind, payload)`` on ``results``."""
    os.setpgrp()  # a terminal's Ctrl-C reaches the parent only, which passes it on once (_passing_ctrl_c_on)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # every process is on this machine
    torch.set_num_threads(threads if device == "cpu" else torch.get_num_threads())
    try:
        distributed.init(device, rank=rank, world=world, address=address)
        reporter = reporter_factory() if reporter_factory is not None else None
        result: tuple[str, Any]
        if job[0] == "train":
            path = loop.start(TrainConfig.from_json(job[1]), reporter=reporter)
        else:
            path = loop.resume(Path(job[1]), reporter=reporter, **job[2])
        result = ("done", str(path))
    except UserError as err:
        result = ("user_error", str(err))
    except Interrupted as stop:
        result = ("interrupted", (stop.epoch, stop.step))
    except KeyboardInterrupt:
        result = ("keyboard", None)
    except BaseException:  # noqa: BLE001 - reported to the parent with its traceback
        result = ("error", f"process {rank}: {traceback.format_exc()}")
    results.put((rank, *result))
    try:
        distributed.close()
    except Exception:  # noqa: BLE001 - a group whose peer died cannot close cleanly
        pass


def _wait(procs, results) -> tuple[dict, tuple[int, int] | None]:
    """Every process's result, or the first process that ended without one (rank, exit code); then
    the others get a few seconds to notice, and are stopped."""
    outcome: dict = {}
    dead, failed_at = None, None
    while len(outcome) < len(procs) and dead is None and (failed_at is None or time.time() < failed_at + 30):
        try:
            rank, kind, payload = results.get(timeout=0.2)
            outcome[rank] = (kind, payload)
            if kind != "done" and failed_at is None:  # the others may wait for it in a collective: 30 s to end too
                failed_at = time.time()
            continue
        except queues.Empty:
            pass
        for rank, p in enumerate(procs):
            if rank not in outcome and p.exitcode not in (None, 0):  # 0: its result is on the way
                dead = (rank, p.exitcode)
    deadline = time.time() + (10 if dead else 60)
    for p in procs:
        p.join(max(0.1, deadline - time.time()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
    return outcome, dead


@contextmanager
def _passing_ctrl_c_on(procs) -> Iterator[None]:
    """While the processes run, Ctrl-C here is passed on to each of them (they stop after the same
    batch and save a checkpoint; a second one stops them at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                os.kill(p.pid, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
