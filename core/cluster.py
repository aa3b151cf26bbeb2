"""A Dask cluster on this machine, the one both ``mrnet-extract`` and ``mrnet-train`` start for
``--gpus``/``--workers``: one worker process per listed GPU, seeing only that GPU
(``CUDA_VISIBLE_DEVICES``) and declaring the resource ``GPU=1``, or N CPU workers sharing the cores.
``dask.distributed`` is imported only when a cluster is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

from mrnet.core.machine import available_cores


def local_cluster(*, workers: int = 0, gpus: Sequence[int] = (), tasks_per_worker: int = 1, torch_threads: int = 0):
    """A local cluster of one worker per GPU in ``gpus``, or else ``workers`` (at least 1) CPU workers.

    ``tasks_per_worker``: tasks a worker runs at once (its Dask threads). ``torch_threads``: the
    OpenMP/MKL threads of each CPU worker; 0 shares this process's cores among the workers.
    """
    from dask.distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    if gpus:
        specs = {
            f"gpu{g}": {
                "cls": Nanny,
                "options": {
                    "nthreads": tasks_per_worker,
                    "env": {"CUDA_VISIBLE_DEVICES": str(g)},
                    "resources": {"GPU": 1},
                    "memory_limit": 0,
                },
            }
            for g in gpus
        }
        return SpecCluster(
            workers=specs, scheduler={"cls": Scheduler, "options": {"dashboard_address": None}}, silence_logs=40
        )
    n = max(1, workers)
    threads = str(torch_threads or max(1, available_cores() // n))
    return LocalCluster(
        n_workers=n,
        threads_per_worker=tasks_per_worker,
        processes=True,
        dashboard_address=None,
        memory_limit=0,
        silence_logs=40,
        env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads},
    )


def declares_gpus(client) -> bool:
    """Whether the cluster's workers were started with ``--resources GPU=1`` (or are this module's GPU workers)."""
    return any(w.get("resources", {}).get("GPU") for w in client.scheduler_info()["workers"].values())
