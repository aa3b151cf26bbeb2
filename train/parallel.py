"""Independent runs side by side: the folds of ``--folds all`` (or any set of runs, such as a model
comparison grid) as tasks on a Dask cluster, the same kind extraction uses.

- ``--gpus 0,1,2,3``: a local cluster of one worker process per GPU (each sees only its GPU), one run
  at a time on each;
- ``--workers N``: a local cluster of N CPU worker processes, the cores shared out among them;
- ``--scheduler tcp://host:8786``: the workers of that cluster (a worker started with
  ``--resources GPU=1`` takes one run at a time).

Each run is an ordinary run folder (``fold-<k>/``) and resumable on its own: a task finds its
folder's checkpoint and continues from it, so a worker that dies has its run continued elsewhere by
Dask, and ``mrnet-train --resume RUN`` continues whatever did not finish. A run that fails is named
with its error; the others go on and are kept. The ``--folds all`` aggregate is written when every
fold has finished.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from mrnet.core.cluster import declares_gpus, local_cluster
from mrnet.core.errors import UserError
from mrnet.train import loop
from mrnet.train import report as reports
from mrnet.train.config import TrainConfig, required
from mrnet.train.loop import Reporter
from mrnet.train.runs import RunFolder
from mrnet.train.setup import open_store
from mrnet.train.splits import fold_count, usable


def wanted(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` (a ``--folds all`` run) trains its folds side by side: more than one worker or
    GPU, or a cluster."""
    return bool((cfg.workers or 0) > 1 or len(cfg.gpus) > 1 or cfg.scheduler)


def train_folds(cfg: TrainConfig, *, reporter: Reporter | None = None, resume: bool = False) -> Path:
    """Start (or, with ``resume``, continue) a ``--folds all`` run with its folds side by side; returns
    its folder once every fold has finished and the aggregate is written."""
    reporter = reporter or Reporter()
    if resume:
        run, store = RunFolder(Path(required(cfg.out, "out"))), open_store(cfg.store)
    else:
        cfg, run, store, _ = loop.prepare(cfg, reporter)
    todo = loop.fold_configs(cfg, run, store)
    folds = fold_count(usable(store.tracks))
    if todo:
        reporter.note(f"{len(todo)} of {folds} folds to train, side by side on {_where(cfg)}")
    device = "cuda" if cfg.gpus else "cpu" if cfg.workers else cfg.device
    failed = run_parallel(
        [c.with_(device=device) for c in todo.values()],
        workers=cfg.workers,
        gpus=cfg.gpus,
        scheduler=cfg.scheduler,
        reporter=reporter,
    )
    if failed:
        lines = "\n".join(f"  - {name}: {error}" for name, error in failed.items())
        raise UserError(
            f"{len(failed)} of {folds} folds of {run.path} failed (the other folds are kept; no aggregate yet):\n{lines}\n"
            f"Fix the cause and continue the failed folds with: mrnet-train --resume {run.path}"
        )
    reports.write_aggregate(run, [run.fold(k).report() for k in range(folds)])
    return run.path


def run_parallel(
    configs: Sequence[TrainConfig],
    *,
    workers: int | None = None,
    gpus: Sequence[int] = (),
    scheduler: str | None = None,
    reporter: Reporter | None = None,
) -> dict[str, str]:
    """Train every config (each with its own ``out`` folder; one that holds a run is resumed) as a
    task on a Dask cluster: ``scheduler``'s, or a local one of ``gpus`` or ``workers``. Returns the
    runs that failed, by folder name, with their errors; the others finished."""
    from dask.distributed import Client, as_completed

    reporter = reporter or Reporter()
    if not configs:
        return {}
    names = [Path(required(c.out, "out")).name for c in configs]
    cluster = None if scheduler else local_cluster(workers=workers or 1, gpus=gpus)
    failed: dict[str, str] = {}
    try:
        with Client(scheduler or cluster, timeout="30s") as client:
            resources = {"GPU": 1} if declares_gpus(client) else None
            tag = uuid.uuid4().hex[:8]
            futures = {
                client.submit(
                    run_job, c.to_json(), key=f"mrnet-train-{name}-{tag}", pure=False, resources=resources
                ): name
                for name, c in zip(names, configs)
            }
            for future in as_completed(futures):
                name = futures[future]
                if future.status == "error":
                    err = future.exception()
                    failed[name] = f"{type(err).__name__}: {err}"
                    reporter.note(f"{name} failed: {failed[name]}")
                else:
                    reporter.note(f"{name} finished: {future.result()}")
                future.release()
    finally:
        if cluster is not None:
            cluster.close()
    return failed


def run_job(cfg_json: dict) -> str:
    """One run, in a cluster worker: started, or continued from its checkpoint if its folder holds one;
    returns its headline test result as text."""
    from mrnet.train.tasks import HEADLINE, label, show, task_of

    cfg = TrainConfig.from_json(cfg_json)
    run = RunFolder(Path(required(cfg.out, "out")))
    if run.config_file.exists():
        loop.fit(cfg, run, open_store(cfg.store), resume=True)
    else:
        loop.train(cfg)
    report = run.report()
    first = HEADLINE[task_of(report)][0]
    return f"test {label(first)} {show(first, report['test'][first])} (epoch {report['selection']['epoch']})"


def _where(cfg: TrainConfig) -> str:
    if cfg.scheduler:
        return f"the Dask cluster at {cfg.scheduler}"
    return f"GPUs {','.join(map(str, cfg.gpus))}" if cfg.gpus else f"{cfg.workers} CPU workers"
