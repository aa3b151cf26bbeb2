"""Where units run: threads in this process, or a Dask cluster (local workers per GPU/CPU, or remote).

Every path runs the same ``process_unit``. Units go onto a queue a few at a time per worker, so a
fast worker takes the next unit as soon as it is free and memory on the client stays flat.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from itertools import islice

from mrnet.core import cluster
from mrnet.extract.config import ExtractConfig
from mrnet.extract.worker import Unit, UnitContext, UnitResult, process_unit

IN_FLIGHT_PER_WORKER = 2  # one unit computing while the next decodes / the last writes


def execute(
    units: list[Unit], ctx: UnitContext, *, on_unit: Callable[[UnitResult], None] | None = None
) -> list[UnitResult]:
    """Run every unit, calling ``on_unit`` as each finishes; a unit that raises stops the run."""
    if not units:
        return []
    cfg = ctx.config
    if cfg.gpus or cfg.workers or cfg.scheduler:
        return _run_dask(units, ctx, cfg, on_unit)
    return _run_threads(units, ctx, on_unit, threads=IN_FLIGHT_PER_WORKER)


def _run_threads(units, ctx, on_unit, *, threads: int) -> list[UnitResult]:
    """In this process: ``threads`` units at once, so decoding and writing overlap the model."""
    results = []
    with ThreadPoolExecutor(threads, thread_name_prefix="mrnet-unit") as pool:
        queue = iter(units)
        running = {pool.submit(process_unit, u, ctx) for u in islice(queue, threads)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                result = fut.result()  # a unit-level failure stops the run; journaled units stay done
                results.append(result)
                if on_unit:
                    on_unit(result)
                nxt = next(queue, None)
                if nxt is not None:
                    running.add(pool.submit(process_unit, nxt, ctx))
    return results


def local_cluster(cfg: ExtractConfig):
    """The local Dask cluster of ``--gpus`` or ``--workers`` (``mrnet.core.cluster``), two units in flight per worker."""
    return cluster.local_cluster(
        workers=cfg.workers, gpus=cfg.gpus, tasks_per_worker=IN_FLIGHT_PER_WORKER, torch_threads=cfg.threads
    )


def gpu_resources(client) -> dict | None:
    """On a cluster whose workers declare ``--resources GPU=1``, each unit asks for half a GPU: two
    units in flight per GPU, one computing while the other decodes or writes."""
    return {"GPU": 0.5} if cluster.declares_gpus(client) else None


def _run_dask(units, ctx, cfg, on_unit) -> list[UnitResult]:
    from dask.distributed import Client, as_completed

    local = None if cfg.scheduler else local_cluster(cfg)
    try:
        with Client(cfg.scheduler or local, timeout="30s") as client:
            workers = max(1, len(client.scheduler_info()["workers"]))
            resources = gpu_resources(client) if cfg.scheduler else None
            queue = iter(units)
            submit = lambda u: client.submit(process_unit, u, ctx, key=f"unit-{u.id}", pure=False, resources=resources)  # noqa: E731
            pending = as_completed([submit(u) for u in islice(queue, workers * IN_FLIGHT_PER_WORKER)])
            results = []
            for fut in pending:
                result = fut.result()
                fut.release()
                results.append(result)
                if on_unit:
                    on_unit(result)
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(submit(nxt))
            return results
    finally:
        if local is not None:
            local.close()
