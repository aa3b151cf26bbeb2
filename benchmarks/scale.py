"""Training at scale: one run on 1 process against the same run on 2 processes (PyTorch DDP).

Each configuration is a fresh ``mrnet.train.launch.train`` of the same run in a child process: the
``tiny`` MRNet (C = 32) on a store of random features (1 layer x 48 dims, 10 s tracks), 3 s crops,
the same global batch, evaluation only after the last epoch. On CPU: 1 process (torch's default
threads, and as many threads as each of 2 processes gets) against ``--workers 2`` (gloo; each process
gets half the cores), with BatchNorm over the global batch (``--sync-bn``, the default) and per
process (``--no-sync-bn``). On a GPU machine: ``--gpus 0``
against ``--gpus 0,...,N-1`` (NCCL) with the ``paper`` preset, when it has more than one GPU.

Time per epoch is each epoch's own ``seconds`` in ``metrics.jsonl`` (loading, steps, all-reduces),
the median over the epochs between the first (start-up) and the last (evaluation); crops/s is the
global batch x steps per epoch / that time. ``startup_s`` is the rest of the wall time: starting
processes, joining the group, the final evaluation and report. Nothing here asserts a timing.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks.common import CACHE, Context, log, median, run_child
from benchmarks.data import feature_store

EPOCHS = 5


def scale_run(
    store: str,
    out: str,
    preset: str,
    batch: int,
    epochs: int,
    workers: int | None,
    gpus: list[int],
    sync_bn: bool,
    device: str,
    threads: int | None = None,
) -> dict:
    """One run, timed (in a child process); ``threads``: torch threads of a one-process run (None: torch's default)."""
    import torch

    from mrnet.train import launch
    from mrnet.train.presets import preset as make
    from mrnet.train.runs import RunFolder

    cfg = make(
        preset,
        store,
        out=out,
        batch_size=batch,
        epochs=epochs,
        eval_every=1000,
        test_curve=False,
        crop_seconds=3.0,
        device=device,
        workers=workers,
        gpus=tuple(gpus),
        sync_bn=sync_bn,
    )
    if threads:
        torch.set_num_threads(threads)
    began = time.perf_counter()
    launch.train(cfg)
    wall = time.perf_counter() - began
    seconds = [m["seconds"] for m in RunFolder(Path(out)).metrics()]
    return {
        "epoch_s": seconds[1:-1],
        "all_epochs_s": seconds,
        "wall_s": wall,
        "startup_s": wall - sum(seconds),
        "torch_threads": torch.get_num_threads() if not (workers or len(gpus) > 1) else "cores / processes, each",
    }


def run(ctx: Context) -> dict:
    import torch

    from mrnet.core.machine import available_cores
    from mrnet.store.reader import FeatureStore
    from mrnet.train.loader import steps_per_epoch
    from mrnet.train.splits import split_tracks

    cuda = ctx.profile.device == "cuda"
    store = feature_store(
        CACHE / "stores" / "scale-192.zarr",
        192,
        seconds=10.0,
        layers=1 if not cuda else 13,
        dim=48 if not cuda else 768,
    )
    train_n = split_tracks(FeatureStore.open(str(store)).tracks).train.height
    batch, preset = (48, "paper") if cuda else (16, "tiny")
    per_epoch = steps_per_epoch(train_n, batch)
    if cuda:
        n = torch.cuda.device_count()
        configs = {"1 GPU": dict(workers=None, gpus=[0], sync_bn=True)}
        if n > 1:
            configs[f"{n} GPUs"] = dict(workers=None, gpus=list(range(n)), sync_bn=True)
    else:
        half = max(1, available_cores() // 2)  # what each of 2 processes gets
        configs = {
            "1 process": dict(workers=None, gpus=[], sync_bn=True),
            f"1 process, {half} torch thread(s)": dict(workers=None, gpus=[], sync_bn=True, threads=half),
            "2 processes": dict(workers=2, gpus=[], sync_bn=True),
            "2 processes, per-rank BatchNorm": dict(workers=2, gpus=[], sync_bn=False),
        }
    log(
        f"scale: {preset} preset, global batch {batch}, {train_n} training tracks = {per_epoch} steps per epoch, {EPOCHS} epochs"
    )
    runs = {}
    for name, options in configs.items():
        out = ctx.work / "runs" / f"scale-{time.time():.0f}"
        runs[name] = run_child(
            "benchmarks.scale:scale_run",
            {
                "store": str(store),
                "out": str(out),
                "preset": preset,
                "batch": batch,
                "epochs": EPOCHS,
                "device": "cuda" if cuda else "cpu",
                **options,
            },
        )
        shutil.rmtree(out, ignore_errors=True)
        epoch = median(runs[name]["epoch_s"])
        runs[name].update(median_epoch_s=epoch, steps_per_s=per_epoch / epoch, crops_per_s=per_epoch * batch / epoch)
        log(
            f"  {name}: {epoch:.2f} s per epoch = {per_epoch / epoch:.2f} steps/s, {per_epoch * batch / epoch:.0f} crops/s; "
            f"start-up and final evaluation {runs[name]['startup_s']:.0f} s"
        )
    first = next(iter(runs.values()))
    return {
        "preset": preset,
        "batch": batch,
        "train_tracks": train_n,
        "steps_per_epoch": per_epoch,
        "epochs": EPOCHS,
        "runs": runs,
        "speedup": {name: first["median_epoch_s"] / r["median_epoch_s"] for name, r in runs.items()},
        "device": ctx.profile.device,
    }
