"""Streaming a feature store into training: splits, random crops, whole-track evaluation batches.

Training reads random crops of each track straight from the store (``FeatureStore.read`` with a
start and stop, only the layers the model uses), never whole tracks and never the whole store.
Each worker of a ``DataLoader`` opens the store itself, lazily, so no Zarr or fsspec object crosses
a fork; a local path and a URL go through the same ``FeatureStore.open``.

Every random choice of a sample (crop start, augmentation) is drawn from a generator seeded with
``(seed, epoch, index)``: a sample is the same whatever the worker count or the order it is read
in, which is what makes a resumed run exact.

>>> import numpy as np
>>> tile_frames(np.arange(3).reshape(1, 1, 3, 1), 7)[0, 0, :, 0].tolist()
[0, 1, 2, 0, 1, 2, 0]
"""

from __future__ import annotations

import os
import signal
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from mrnet.store.errors import UserError
from mrnet.store.location import Location
from mrnet.store.reader import FeatureStore

# --- splits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splits:
    """The three parts of one run's data, and how they were chosen (for the report)."""

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    description: str

    def sizes(self) -> dict[str, int]:
        return {"train": self.train.height, "valid": self.valid.height, "test": self.test.height}


def usable(tracks: pl.DataFrame) -> pl.DataFrame:
    """Tracks that can be trained on: extracted (status done) and labelled."""
    return tracks.filter((pl.col("status") == "done") & pl.col("label").is_not_null() & pl.col("frames").is_not_null())


def fold_count(tracks: pl.DataFrame) -> int:
    """Number of folds ``K`` in the manifest (``max fold + 1``), 0 when it has none.

    >>> fold_count(pl.DataFrame({"fold": [0, 2, 1, None]}))
    3
    """
    folds = tracks["fold"].drop_nulls()
    return int(folds.max()) + 1 if folds.len() else 0


def fold_roles(fold: int, k: int) -> tuple[int, int]:
    """``(test fold, valid fold)`` for run ``fold`` of ``k``: test = fold, valid = the next one.

    >>> fold_roles(3, 10), fold_roles(9, 10)
    ((3, 4), (9, 0))
    """
    return fold, (fold + 1) % k


def has_official_split(tracks: pl.DataFrame) -> bool:
    return bool(tracks["split"].drop_nulls().len())


def split_tracks(tracks: pl.DataFrame, *, fold: int | None = None, where: str = "the store") -> Splits:
    """Train / valid / test tracks: the official split, or fold ``fold`` of a k-fold manifest.

    For fold k of K: test = fold k, valid = fold (k + 1) % K, train = the other K - 2 folds. Raises
    ``UserError`` when a part is empty or the training part has fewer than two classes.
    """
    tracks = usable(tracks)
    if fold is None:
        if not has_official_split(tracks):
            raise UserError(f"{where} has no official train/valid/test split; pass --fold K or --folds all to use its folds.")
        parts = {name: tracks.filter(pl.col("split") == name) for name in ("train", "valid", "test")}
        description = "official split"
    else:
        k = fold_count(tracks)
        if k == 0:
            raise UserError(f"{where} has no folds (only an official split); drop --fold/--folds.")
        if fold >= k:
            raise UserError(f"--fold {fold}: {where} has folds 0..{k - 1}.")
        test_fold, valid_fold = fold_roles(fold, k)
        parts = {
            "test": tracks.filter(pl.col("fold") == test_fold),
            "valid": tracks.filter(pl.col("fold") == valid_fold),
            "train": tracks.filter(pl.col("fold").is_not_null() & ~pl.col("fold").is_in([test_fold, valid_fold])),
        }
        description = f"fold {fold} of {k}: test = fold {test_fold}, valid = fold {valid_fold}, train = the other {k - 2}"
    for name in ("train", "valid", "test"):
        if parts[name].height == 0:
            what = "training split" if name == "train" else f"{name} split"
            raise UserError(
                f"{where}: the {what} is empty ({description}). "
                + ("A k-fold run needs at least 3 folds. " if fold is not None else "")
                + "Re-extract with a split or fold list that fills it."
            )
    classes = parts["train"]["label"].n_unique()
    if classes < 2:
        raise UserError(f"{where}: the training split has {classes} class; a classifier needs at least two. Check the labels the store was extracted with.")
    return Splits(parts["train"], parts["valid"], parts["test"], description)


# --- crops and augmentation ---------------------------------------------------------------------


def tile_frames(x: np.ndarray, frames: int) -> np.ndarray:
    """Repeat ``x`` ``(channels, layers, T, dim)`` along time until it has ``frames`` frames."""
    return np.take(x, np.arange(frames) % x.shape[2], axis=2)


def _span(rng: np.random.Generator, size: int, frac: float) -> tuple[int, int]:
    """``(start, width)`` of one mask: width uniform in ``[0, frac * size]``, start anywhere it fits."""
    width = int(rng.integers(0, int(frac * size) + 1))
    return int(rng.integers(0, size - width + 1)), width


@dataclass(frozen=True)
class Augment:
    """Feature-domain augmentation of a batch of crops ``(B, channels, layers, T, dim)``.

    - Gaussian noise with probability ``noise_p``: mean drawn in [-0.03, 0.03] and std in [0.05, 0.1]
      (the authors' waveform-noise ranges), scaled by each feature's std over the crop.
    - Up to ``time_masks`` time masks and ``feature_masks`` feature masks (SpecAugment), each at most
      the given fraction of the axis, filled with the crop's per-feature mean (which the model's
      instance normalisation maps to about zero).

    It runs in two halves. ``draw`` picks one sample's random choices in the loader (a few numbers,
    from the sample's own generator); ``apply`` does the arithmetic on the whole batch where the model
    runs, after the copy to the GPU. Drawing noise for every element of a crop costs a CPU ~15-30 ms
    (13 x 300 x 768 values), which capped a loader worker at ~30 crops/s, too few for a GPU; there it
    runs on the device, beside the model. Each sample's noise comes from a generator seeded by its own draw, so a batch is
    the same whatever the worker count or the order it was loaded in, and a resumed run stays exact
    (on the same device: CPU and CUDA generators give different streams).

    >>> aug = Augment(noise_p=1.0)
    >>> plans = [aug.draw(np.random.default_rng(i), frames=50, dim=8) for i in range(2)]
    >>> x = torch.randn(2, 1, 3, 50, 8)
    >>> out = aug.apply(x, stack_plans(plans))
    >>> out.shape, bool(torch.equal(out, aug.apply(x, stack_plans(plans)))), bool(torch.equal(out, x))
    (torch.Size([2, 1, 3, 50, 8]), True, False)
    """

    noise_p: float = 0.7
    time_masks: int = 2
    time_mask_frac: float = 0.1
    feature_masks: int = 2
    feature_mask_frac: float = 0.1

    def draw(self, rng: np.random.Generator, *, frames: int, dim: int) -> dict[str, np.ndarray]:
        """One sample's random choices: whether and how much noise, its seed, and the mask spans."""
        noise = rng.random() < self.noise_p
        mu, sigma = rng.uniform(-0.03, 0.03), rng.uniform(0.05, 0.1)
        seed = int(rng.integers(0, 2**62))
        time = [_span(rng, frames, self.time_mask_frac) for _ in range(self.time_masks)]
        feature = [_span(rng, dim, self.feature_mask_frac) for _ in range(self.feature_masks)]
        return {
            "noise": np.array(noise), "mu": np.array(mu, dtype=np.float32), "sigma": np.array(sigma, dtype=np.float32),
            "seed": np.array(seed, dtype=np.int64),
            "time": np.array(time, dtype=np.int64).reshape(-1, 2), "feature": np.array(feature, dtype=np.int64).reshape(-1, 2),
        }

    def apply(self, x: torch.Tensor, plan: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch ``x`` (float, on any device) augmented as ``plan`` (``stack_plans`` of the draws,
        on the CPU) says; returns a new tensor and leaves ``x`` as it was."""
        mean = x.mean(dim=3, keepdim=True)  # (B, C, L, 1, D), before the noise
        noisy = [b for b, on in enumerate(plan["noise"].tolist()) if on]
        if noisy:
            std = (x - mean).square_().mean(dim=3, keepdim=True).sqrt_()  # 5x faster than x.std over a middle axis
            x = x.clone()
            for b in noisy:
                g = torch.Generator(device=x.device).manual_seed(int(plan["seed"][b]))
                z = torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype)
                x[b] += z.mul_(float(plan["sigma"][b])).add_(float(plan["mu"][b])).mul_(std[b])
        masked = (_spans_mask(plan["time"], x.shape[3])[:, None, None, :, None]
                  | _spans_mask(plan["feature"], x.shape[4])[:, None, None, None, :])
        return torch.where(masked.to(x.device, non_blocking=True), mean, x)


def _spans_mask(spans: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size)`` bool: inside any of each sample's ``(start, width)`` spans ``(B, M, 2)``.

    >>> _spans_mask(torch.tensor([[[1, 2], [4, 0]]]), 6).int().tolist()
    [[0, 1, 1, 0, 0, 0]]
    """
    at = torch.arange(size)
    start, width = spans[..., :1], spans[..., 1:]
    return ((at >= start) & (at < start + width)).any(dim=1)


def stack_plans(plans: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Per-sample ``Augment.draw`` results as one batch of tensors."""
    return {k: torch.from_numpy(np.stack([p[k] for p in plans])) for k in plans[0]}


class _StoreTracks(Dataset):
    """Tracks of one split; opens the store lazily, once per process (so each worker opens its own)."""

    def __init__(self, location: Location, tracks: pl.DataFrame, layers: Sequence[int]):
        self.location = location
        self.keys = tracks["key"].to_list()
        self.labels = tracks["label"].to_list()
        self.frames = tracks["frames"].to_list()
        self.layers = list(layers)
        self._store: FeatureStore | None = None
        self._pid = None

    @property
    def store(self) -> FeatureStore:
        if self._store is None or self._pid != os.getpid():
            self._store, self._pid = FeatureStore.open(self.location), os.getpid()
        return self._store

    def __getstate__(self):  # spawn/forkserver workers: send the location, never the open store
        return {**self.__dict__, "_store": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.keys)

    def _batch_array(self, indices: list[int], frames: int) -> torch.Tensor:
        """An uninitialised ``(B, channels, layers, frames, dim)`` batch of the store's dtype for these tracks."""
        first = self.store.array(self.keys[indices[0]])
        return _batch_tensor((len(indices), first.shape[0], len(self.layers), frames, first.shape[3]), np.dtype(first.dtype))


class CropDataset(_StoreTracks):
    """Random crops of ``crop`` frames for training; items are ``(epoch, index)`` pairs.

    A track shorter than the crop is read whole and repeated to fill it. Returns ``(features
    (channels, layers, crop, dim) in the store's dtype, label, augmentation plan or None)``: the crop
    travels as stored (float16 by default, half the bytes of float32 through the worker queue and the
    copy to the GPU) and becomes float32, augmented, where the model runs (``loop.train_step``).
    """

    def __init__(self, location: Location, tracks: pl.DataFrame, layers: Sequence[int], *, crop: int, seed: int, augment: Augment | None = None):
        super().__init__(location, tracks, layers)
        self.crop, self.seed, self.augment = crop, seed, augment

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[np.ndarray, int, dict | None]:
        x, plan = self._crop(item, None)
        return x, self.labels[_epoch_index(item)[1]], plan

    def __getitems__(self, items: list, pool: Executor | None = None) -> "CropBatch":
        """A whole batch, each crop read straight into its slot of one batch array (on ``pool``'s
        threads when given): in a DataLoader worker that array is allocated in shared memory, so the
        batch reaches the training process without the two copies a stack of separate crops costs
        (the stack, then the move to shared memory). Equal to ``collate([self[i] for i in items])``."""
        indices = [_epoch_index(item)[1] for item in items]
        x = self._batch_array(indices, self.crop)
        xs = x.numpy()
        plans = _for_each(lambda b: self._crop(items[b], xs[b])[1], len(items), pool)
        y = torch.tensor([self.labels[i] for i in indices], dtype=torch.long)
        return CropBatch(x, y, stack_plans(plans) if self.augment is not None else None)

    def _crop(self, item: tuple[int, int] | int, out: np.ndarray | None) -> tuple[np.ndarray, dict | None]:
        epoch, i = _epoch_index(item)
        rng = np.random.default_rng((self.seed, epoch, i))
        n = self.frames[i]
        if n >= self.crop:
            start = int(rng.integers(0, n - self.crop + 1))
            x = self.store.read(self.keys[i], start, start + self.crop, self.layers, out=out)
        else:
            x = tile_frames(self.store.read(self.keys[i], 0, n, self.layers), self.crop)
            if out is not None:
                out[...] = x
                x = out
        plan = self.augment.draw(rng, frames=x.shape[2], dim=x.shape[3]) if self.augment is not None else None
        return x, plan


def _epoch_index(item: tuple[int, int] | int) -> tuple[int, int]:
    """``(epoch, track index)`` of a dataset item: ``(epoch, index)`` pairs, or a bare index (epoch 0)."""
    return item if isinstance(item, tuple) else (0, item)


def _for_each(fn, count: int, pool: Executor | None) -> list:
    """``[fn(0), ..., fn(count - 1)]``, on ``pool``'s threads when given."""
    return list(pool.map(fn, range(count))) if pool is not None else [fn(b) for b in range(count)]


class TrackBatch(NamedTuple):
    """An evaluation batch as ``TrackDataset.__getitems__`` builds it (``collate`` passes it through)."""

    x: torch.Tensor  # (B, channels, layers, T, dim), the store's dtype
    y: torch.Tensor  # (B,) labels


class CropBatch(NamedTuple):
    """A training batch as ``CropDataset.__getitems__`` builds it (``collate`` passes it through)."""

    x: torch.Tensor  # (B, channels, layers, crop, dim), the store's dtype
    y: torch.Tensor  # (B,) labels
    plan: dict | None  # the batch's augmentation draws (stack_plans), None without augmentation


def _batch_tensor(shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
    """An uninitialised batch tensor; in a DataLoader worker, in shared memory from the start (as
    torch's own default_collate allocates it), so sending it to the main process copies nothing.
    In the main process NumPy allocates it: NumPy asks for transparent huge pages on large arrays,
    which makes first writes to a fresh 100 MB batch ~5x cheaper than torch.empty's 4 kB pages."""
    if torch.utils.data.get_worker_info() is None:
        return torch.from_numpy(np.empty(shape, dtype=dtype))
    dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    try:
        storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(int(np.prod(shape)))
    except AttributeError:  # torch moved its private helper: an ordinary tensor works, one copy dearer
        return torch.empty(shape, dtype=dtype)
    return torch.empty(0, dtype=dtype).new(storage).view(shape)


class TrackDataset(_StoreTracks):
    """Whole tracks for evaluation: ``(features (channels, layers, T, dim) in the store's dtype, label)``."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.store.read(self.keys[i], 0, self.frames[i], self.layers), self.labels[i]

    def __getitems__(self, items: list[int], pool: Executor | None = None) -> "TrackBatch":
        """Tracks of one length (``length_batches``) read straight into one batch array, as ``CropDataset.__getitems__``."""
        n = self.frames[items[0]]
        if any(self.frames[i] != n for i in items):
            raise ValueError("a batch of whole tracks needs tracks of one length (see length_batches)")
        x = self._batch_array(items, n)
        xs = x.numpy()
        _for_each(lambda b: self.store.read(self.keys[items[b]], 0, n, self.layers, out=xs[b]), len(items), pool)
        return TrackBatch(x, torch.tensor([self.labels[i] for i in items], dtype=torch.long))


# --- batching -----------------------------------------------------------------------------------


class Prefetcher:
    """Batches read ahead by threads of this process: the default loader for training and evaluation.

    While the model works on one batch, the next ``depth`` are read, each by all ``threads`` at once
    (one crop per task, straight into the batch array; NumPy copies and file reads release the GIL).
    No worker processes, so no batch is copied between processes: through a DataLoader with worker
    processes each batch is written again into shared memory and page-faulted twice, which made 2
    workers deliver several times fewer crops than one thread reads (docs/performance.md, figure 5). With
    ``pin``, batches are copied into page-locked memory here too, for asynchronous copies to the GPU.
    Batches are the dataset's, so they are the same whatever the thread count.
    """

    def __init__(self, dataset: "CropDataset | TrackDataset", batches, *, threads: int, pin: bool = False, depth: int = 2):
        self.dataset, self.batches, self.threads, self.pin, self.depth = dataset, batches, max(1, threads), pin, max(1, depth)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple]:
        readers = ThreadPoolExecutor(self.threads, thread_name_prefix="mrnet-read")
        builder = ThreadPoolExecutor(1, thread_name_prefix="mrnet-batch")
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
    return [group[s : s + batch_size] for n in sorted(by_length) for group in [by_length[n]] for s in range(0, len(group), batch_size)]


def collate(items: list[tuple] | CropBatch | TrackBatch) -> tuple:
    """Stack ``(features, label)`` items into ``(B, channels, layers, T, dim)`` and ``(B,)``; training
    items ``(features, label, plan)`` also give the batch's augmentation plan (``None`` without one).
    A ``CropBatch`` or ``TrackBatch`` (the datasets' ``__getitems__``) is already a batch and passes through."""
    if isinstance(items, (CropBatch, TrackBatch)):
        return tuple(items)
    x = torch.from_numpy(np.stack([it[0] for it in items]))
    y = torch.tensor([it[1] for it in items], dtype=torch.long)
    if len(items[0]) == 2:
        return x, y
    plans = [it[2] for it in items]
    return x, y, (stack_plans(plans) if plans[0] is not None else None)


def worker_init(_: int) -> None:
    """Set up a DataLoader worker: ignore Ctrl-C (the main process stops cleanly and saves a checkpoint).
    Filesystem objects inherited from the parent are dropped by mrnet.store.location at fork."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
