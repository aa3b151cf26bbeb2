"""Batches of a dataset in a run's order: shuffled crops for training, equal-length tracks for evaluation.

``EpochBatches`` orders an epoch (by seed and epoch only); ``length_batches`` groups whole tracks of
one length; ``Prefetcher`` (the default) reads batches ahead on threads of this process, and
``make_loader`` picks it or a ``DataLoader`` with worker processes.
"""

from __future__ import annotations

import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from itertools import islice

import numpy as np
import torch
from torch.utils.data import DataLoader

from mrnet.core.machine import available_cores
from mrnet.train.augment import stack_plans
from mrnet.train.crops import CropBatch, CropDataset, TrackBatch, TrackDataset, stack_targets


class Prefetcher:
    """Batches read ahead by threads of this process: the default loader for training and evaluation.

    While the model works on one batch, the next ``depth`` are read, each by all ``threads`` at once
    (one crop per task, straight into the batch array; NumPy copies and file reads release the GIL).
    No worker processes, so no batch is copied between processes: through a DataLoader with worker
    processes each batch is written again into shared memory and page-faulted twice, which made 2
    workers deliver several times fewer crops than one thread reads (docs/performance.md, figure 5). With
    ``pin``, batches are copied into page-locked memory here too, for asynchronous copies to the GPU.
    Batches are the dataset's, so they are the same whatever the thread count. ``concurrent``: how many
    of the ``depth`` batches are read at the same time (1 locally; more for a remote store, where a read
    waits a round trip and one batch cannot keep enough requests in flight, see :func:`reading_plan`).
    """

    def __init__(
        self,
        dataset: CropDataset | TrackDataset,
        batches,
        *,
        threads: int,
        pin: bool = False,
        depth: int = 2,
        concurrent: int = 1,
    ):
        self.dataset, self.batches, self.threads, self.pin, self.depth = (
            dataset,
            batches,
            max(1, threads),
            pin,
            max(1, depth),
        )
        self.concurrent = max(1, min(concurrent, self.depth))

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple]:
        readers = ThreadPoolExecutor(self.threads, thread_name_prefix="mrnet-read")
        builder = ThreadPoolExecutor(self.concurrent, thread_name_prefix="mrnet-batch")
        queue = iter(self.batches)
        pending = deque(builder.submit(self._build, items, readers) for items in islice(queue, self.depth))
        try:
            while pending:
                batch = pending.popleft().result()
                following = next(queue, None)
                if following is not None:
                    pending.append(builder.submit(self._build, following, readers))
                yield batch
        finally:
            builder.shutdown(wait=True, cancel_futures=True)
            readers.shutdown(wait=True, cancel_futures=True)

    def _build(self, items, readers: Executor) -> tuple:
        batch = tuple(self.dataset.__getitems__(items, pool=readers))
        return tuple(v.pin_memory() if self.pin and isinstance(v, torch.Tensor) else v for v in batch)


class EpochBatches:
    """Shuffled training batches of ``(epoch, index)`` items; the order depends only on (seed, epoch).

    Drops the last partial batch when there is at least one full one (BatchNorm needs more than one
    sample). ``skip`` leaves out the first batches: a run resumed mid-epoch continues from there.

    >>> [len(b) for b in EpochBatches(10, 4, seed=0, epoch=0)]
    [4, 4]
    >>> list(EpochBatches(10, 4, seed=0, epoch=0, skip=1)) == list(EpochBatches(10, 4, seed=0, epoch=0))[1:]
    True
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, epoch: int, skip: int = 0):
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        size = min(batch_size, n)
        count = n // size
        self.batches = [[(epoch, i) for i in order[b * size : (b + 1) * size]] for b in range(count)][skip:]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return n // min(batch_size, n)


def length_batches(frames: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped so a batch holds only tracks of one length (padding would change the statistics).

    >>> length_batches([5, 3, 5, 5, 3], 2)
    [[1, 4], [0, 2], [3]]
    """
    by_length: dict[int, list[int]] = {}
    for i, n in enumerate(frames):
        by_length.setdefault(n, []).append(i)
    return [
        group[s : s + batch_size]
        for n in sorted(by_length)
        for group in [by_length[n]]
        for s in range(0, len(group), batch_size)
    ]


def collate(items: list[tuple] | CropBatch | TrackBatch) -> tuple:
    """Stack ``(features, label)`` items into ``(B, channels, layers, T, dim)`` and ``(B,)``; training
    items ``(features, label, plan)`` also give the batch's augmentation plan (``None`` without one).
    A ``CropBatch`` or ``TrackBatch`` (the datasets' ``__getitems__``) is already a batch and passes through."""
    if isinstance(items, (CropBatch, TrackBatch)):
        return tuple(items)
    x = torch.from_numpy(np.stack([it[0] for it in items]))
    y = stack_targets([it[1] for it in items])
    if len(items[0]) == 2:
        return x, y
    plans = [it[2] for it in items]
    return x, y, (stack_plans(plans) if plans[0] is not None else None)


def worker_init(_: int) -> None:
    """Set up a DataLoader worker: ignore Ctrl-C (the main process stops cleanly and saves a checkpoint).
    Filesystem objects inherited from the parent are dropped by mrnet.store.location at fork."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def loader_threads(device: torch.device) -> int:
    """Reading threads of the default loader (``Prefetcher``): 2 on CPU, where the model needs the
    cores; on a GPU half the cores, 2 to 8."""
    if device.type != "cuda":
        return 2
    return max(2, min(8, available_cores() // 2))


def reading_plan(location, threads: int, batch_size: int) -> dict:
    """How a ``Prefetcher`` reads a store: locally ``threads`` reading threads, 2 batches ahead, one at a
    time. A remote store (a URL) gets as many reads in flight as its round trip asks for
    (``Location.concurrency``: one per millisecond, up to 64): that many threads, and enough batches
    read at once, each a batch of ``batch_size``, to keep them busy (docs/sharing.md)."""
    if location is None or location.local:
        return {"threads": threads, "depth": 2, "concurrent": 1}
    in_flight = location.concurrency(threads)
    concurrent = max(1, -(-in_flight // max(1, batch_size)))
    return {"threads": in_flight, "depth": concurrent + 1, "concurrent": concurrent}


def make_loader(
    dataset, batches, *, num_workers: int | None, device: torch.device, seed: int, persistent: bool = False
):
    """Batches of ``dataset`` in the order of ``batches``: read ahead by threads of this process
    (``num_workers`` None, the default; as many as a remote store's latency asks for, ``reading_plan``),
    or by a DataLoader with that many worker processes, its own generator seeding them."""
    if num_workers is None:
        batch = max((len(b) for b in islice(iter(batches), 1)), default=1)
        plan = reading_plan(getattr(dataset, "location", None), loader_threads(device), batch)
        return Prefetcher(dataset, batches, pin=device.type == "cuda", **plan)
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        worker_init_fn=worker_init if num_workers else None,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=persistent and num_workers > 0,
    )
