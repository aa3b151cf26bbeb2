"""Reading a store for training: random crops of the training tracks, whole tracks for evaluation.

Training reads random crops of each track straight from the store (``FeatureStore.read`` with a
start and stop, only the layers the model uses), never whole tracks and never the whole store.
Each process opens the store itself, lazily, so no Zarr or fsspec object crosses a fork; a local
path and a URL go through the same ``FeatureStore.open``.

Every random choice of a sample (crop start, augmentation) is drawn from a generator seeded with
``(seed, epoch, index)``: a sample is the same whatever the worker count or the order it is read
in, which is what makes a resumed run exact.

>>> import numpy as np
>>> tile_frames(np.arange(3).reshape(1, 1, 3, 1), 7)[0, 0, :, 0].tolist()
[0, 1, 2, 0, 1, 2, 0]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from mrnet.store.location import Location
from mrnet.store.reader import FeatureStore
from mrnet.train.augment import Augment, PartAugment, stack_plans

_OPENING = threading.Lock()  # one FeatureStore per dataset and process, however many threads ask at once


def tile_frames(x: np.ndarray, frames: int) -> np.ndarray:
    """Repeat ``x`` ``(channels, layers, T, dim)`` along time until it has ``frames`` frames."""
    return np.take(x, np.arange(frames) % x.shape[2], axis=2)


def track_targets(tracks: pl.DataFrame, tags: list[str] | None = None) -> list:
    """Each track's target: its label id (single-label), or, given the label table's ``tags``, a
    multi-hot float32 vector over them (multi-label).

    >>> t = pl.DataFrame({"label": [None, None], "tags": [["rock"], ["jazz", "rock"]]})
    >>> [v.tolist() for v in track_targets(t, ["jazz", "rock"])]
    [[0.0, 1.0], [1.0, 1.0]]
    """
    if tags is None:
        return tracks["label"].to_list()
    index = {t: i for i, t in enumerate(tags)}
    out = []
    for names in tracks["tags"].to_list():
        v = np.zeros(len(tags), np.float32)
        v[[index[n] for n in names or () if n in index]] = 1.0
        out.append(v)
    return out


def stack_targets(targets: list) -> torch.Tensor:
    """A batch of targets: label ids as int64, multi-hot vectors as float32 rows."""
    return (
        torch.from_numpy(np.stack(targets))
        if isinstance(targets[0], np.ndarray)
        else torch.tensor(targets, dtype=torch.long)
    )


@dataclass(frozen=True)
class EvalUnit:
    """What of a track a model sees in evaluation: the ``whole`` track; the ``center`` crop of ``crop``
    frames (centred on the track's middle); the ``middle`` crop, starting at the track's middle (NNET's
    test window, ``audio[len/2 : len/2 + 2^18]`` in the authors' code; moved back to fit a track
    shorter than 1.5 crops); or ``chunks`` crops, consecutive from the start when the track
    is long enough, else spread evenly, whose class probabilities are averaged (MusicNeXt's ten
    fragments). A track shorter than a crop is repeated to fill it, as in training.

    >>> EvalUnit("chunks", crop=256, chunks=10).starts(2584)
    [0, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304]
    >>> EvalUnit("center", crop=256).starts(1000), EvalUnit("chunks", crop=100, chunks=3).starts(250)
    ([372], [0, 75, 150])
    >>> EvalUnit("middle", crop=256).starts(1292), EvalUnit("middle", crop=256).starts(300)   # 30 s: 15 s on; too short: fits
    ([646], [44])
    """

    kind: str = "whole"  # whole | center | middle | chunks
    crop: int = 0
    chunks: int = 1

    def starts(self, frames: int) -> list[int]:
        room = max(0, frames - self.crop)
        if self.kind == "center":
            return [room // 2]
        if self.kind == "middle":
            return [min(frames // 2, room)]
        if frames >= self.chunks * self.crop:
            return [i * self.crop for i in range(self.chunks)]
        return np.linspace(0, room, self.chunks).round().astype(int).tolist()


class _StoreTracks(Dataset):
    """Tracks of one split; opens the store lazily, once per process (so each worker opens its own)."""

    def __init__(
        self,
        location: Location,
        tracks: pl.DataFrame,
        layer_positions: Sequence[int],
        targets: list | None = None,
        check_reads: bool = False,
    ):
        self.location = location
        self.check_reads = check_reads  # each track's checksum checked on its first read (FeatureStore)
        self.keys = tracks["key"].to_list()
        self.labels = track_targets(tracks) if targets is None else targets  # label ids, or multi-hot vectors
        self.frames = tracks["frames"].to_list()
        self.layer_positions = list(layer_positions)  # the stored layers read, by position
        self._store: FeatureStore | None = None
        self._pid: int | None = None

    @property
    def store(self) -> FeatureStore:
        """The store opened once per process: the loader's reading threads share it (and its cache of
        opened arrays and shard indexes), so a track is opened once, not once per thread that met it first."""
        if self._store is None or self._pid != os.getpid():
            with _OPENING:
                if self._store is None or self._pid != os.getpid():
                    self._store, self._pid = FeatureStore.open(self.location, check_reads=self.check_reads), os.getpid()
        return self._store

    def __getstate__(self):  # spawn/forkserver workers: send the location, never the open store
        return {**self.__dict__, "_store": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.keys)

    def _batch_array(self, indices: list[int], frames: int, per_item: tuple[int, ...] = ()) -> torch.Tensor:
        """An uninitialised ``(B, *per_item, channels, layers, frames, dim)`` batch of the store's dtype (its
        provenance's, which ``FeatureStore.array`` holds every track to: no track is opened for it)."""
        p = self.store.provenance
        shape = (len(indices), *per_item, p.channels, len(self.layer_positions), frames, p.dim)
        return _batch_tensor(shape, np.dtype(p.dtype))


def fragments(tracks: pl.DataFrame, crop: int) -> pl.DataFrame:
    """``tracks`` with one row per non-overlapping fragment of ``crop`` frames (at least one per track),
    its first frame in ``fragment``: an epoch of ``--epoch-mode fragments`` reads each row once
    (MusicNeXt's ten 256-frame fragments of a 30 s clip). A track shorter than a crop is one fragment.

    >>> t = pl.DataFrame({"key": ["a", "b"], "frames": [2584, 100]})
    >>> fragments(t, 256).group_by("key", maintain_order=True).len().rows(), fragments(t, 256)["fragment"][:3].to_list()
    ([('a', 10), ('b', 1)], [0, 256, 512])
    """
    count = (pl.col("frames") // crop).clip(lower_bound=1)
    return tracks.with_columns(fragment=pl.int_ranges(0, count).cast(pl.List(pl.Int64)) * crop).explode("fragment")


class CropDataset(_StoreTracks):
    """Random crops of ``crop`` frames for training; items are ``(epoch, index)`` pairs. Given a table
    of ``fragments``, item ``i`` is the fragment of its row (its start fixed, its augmentation drawn).

    A track shorter than the crop is read whole and repeated to fill it. Returns ``(features
    (channels, layers, crop, dim) in the store's dtype, label, augmentation plan or None)``: the crop
    travels as stored (float16 by default, half the bytes of float32 through the worker queue and the
    copy to the GPU) and becomes float32, augmented, where the model runs (``loop.train_step``).
    """

    def __init__(
        self,
        location: Location,
        tracks: pl.DataFrame,
        layer_positions: Sequence[int],
        *,
        crop: int,
        seed: int,
        augment: Augment | PartAugment | None = None,
        targets: list | None = None,
        check_reads: bool = False,
    ):
        super().__init__(location, tracks, layer_positions, targets, check_reads)
        self.crop, self.seed, self.augment = crop, seed, augment
        self.starts = tracks["fragment"].to_list() if "fragment" in tracks.columns else None

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[np.ndarray, int, dict | None]:
        x, plan = self._crop(item, None)
        return x, self.labels[_epoch_index(item)[1]], plan

    def __getitems__(self, items: list, pool: Executor | None = None) -> CropBatch:
        """A whole batch, each crop read straight into its slot of one batch array (on ``pool``'s
        threads when given): in a DataLoader worker that array is allocated in shared memory, so the
        batch reaches the training process without the two copies a stack of separate crops costs
        (the stack, then the move to shared memory). Equal to ``collate([self[i] for i in items])``."""
        indices = [_epoch_index(item)[1] for item in items]
        x = self._batch_array(indices, self.crop)
        xs = x.numpy()
        plans = _for_each(lambda b: self._crop(items[b], xs[b])[1], len(items), pool)
        y = stack_targets([self.labels[i] for i in indices])
        return CropBatch(x, y, stack_plans(plans) if self.augment is not None else None)

    def _crop(self, item: tuple[int, int] | int, out: np.ndarray | None) -> tuple[np.ndarray, dict | None]:
        epoch, i = _epoch_index(item)
        rng = np.random.default_rng((self.seed, epoch, i))
        n = self.frames[i]
        if n >= self.crop:
            start = int(rng.integers(0, n - self.crop + 1)) if self.starts is None else self.starts[i]
            x = self.store.read(self.keys[i], start, start + self.crop, self.layer_positions, out=out)
        else:
            x = tile_frames(self.store.read(self.keys[i], 0, n, self.layer_positions), self.crop)
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

    x: torch.Tensor  # (B, channels, layers, T, dim), or (B, crops, channels, layers, crop, dim); the store's dtype
    y: torch.Tensor  # (B,) label ids, or (B, tags) multi-hot


class CropBatch(NamedTuple):
    """A training batch as ``CropDataset.__getitems__`` builds it (``collate`` passes it through)."""

    x: torch.Tensor  # (B, channels, layers, crop, dim), the store's dtype
    y: torch.Tensor  # (B,) label ids, or (B, tags) multi-hot
    plan: dict | None  # the batch's augmentation draws (stack_plans), None without augmentation


def _batch_tensor(shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
    """An uninitialised batch tensor; in a DataLoader worker, in shared memory from the start (as
    torch's own default_collate allocates it), so sending it to the main process copies nothing.
    In the main process NumPy allocates it: NumPy asks for transparent huge pages on large arrays,
    which makes first writes to a fresh 100 MB batch ~5x cheaper than torch.empty's 4 kB pages."""
    if torch.utils.data.get_worker_info() is None:
        return torch.from_numpy(np.empty(shape, dtype=dtype))
    torch_dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    try:
        storage = torch.empty(0, dtype=torch_dtype)._typed_storage()._new_shared(int(np.prod(shape)))
    except AttributeError:  # torch moved its private helper: an ordinary tensor works, one copy dearer
        return torch.empty(shape, dtype=torch_dtype)
    return torch.empty(0, dtype=torch_dtype).new(storage).view(shape)


class TrackDataset(_StoreTracks):
    """Tracks for evaluation as ``eval_unit`` says: ``(features, target)`` with features ``(channels, layers,
    T, dim)`` for whole tracks, ``(crops, channels, layers, crop, dim)`` otherwise, in the store's dtype."""

    def __init__(
        self,
        location: Location,
        tracks: pl.DataFrame,
        layer_positions: Sequence[int],
        *,
        eval_unit: EvalUnit = EvalUnit(),
        targets: list | None = None,
        check_reads: bool = False,
    ):
        super().__init__(location, tracks, layer_positions, targets, check_reads)
        self.eval_unit = eval_unit

    @property
    def lengths(self) -> list[int]:
        """Frames of each item: a batch holds items of one length (``loader.length_batches``)."""
        return self.frames if self.eval_unit.kind == "whole" else [self.eval_unit.crop] * len(self.keys)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if self.eval_unit.kind == "whole":
            return self.store.read(self.keys[i], 0, self.frames[i], self.layer_positions), self.labels[i]
        return np.stack([self._read(i, start) for start in self.eval_unit.starts(self.frames[i])]), self.labels[i]

    def __getitems__(self, items: list[int], pool: Executor | None = None) -> TrackBatch:
        """Items of one length (``length_batches``) read straight into one batch array, as ``CropDataset.__getitems__``."""
        n = self.lengths[items[0]]
        if any(self.lengths[i] != n for i in items):
            raise ValueError("a batch of whole tracks needs tracks of one length (see length_batches)")
        y = stack_targets([self.labels[i] for i in items])
        if self.eval_unit.kind == "whole":
            x = self._batch_array(items, n)
            xs = x.numpy()
            _for_each(
                lambda b: self.store.read(self.keys[items[b]], 0, n, self.layer_positions, out=xs[b]), len(items), pool
            )
            return TrackBatch(x, y)
        crops = len(self.eval_unit.starts(self.frames[items[0]]))
        x = self._batch_array(items, n, (crops,))
        xs = x.numpy()

        def fill(b: int) -> None:
            for c, start in enumerate(self.eval_unit.starts(self.frames[items[b]])):
                xs[b, c] = self._read(items[b], start)

        _for_each(fill, len(items), pool)
        return TrackBatch(x, y)

    def _read(self, i: int, start: int) -> np.ndarray:
        """The crop of ``eval_unit.crop`` frames from ``start``; a track shorter than the crop, repeated."""
        stop = min(self.frames[i], start + self.eval_unit.crop)
        x = self.store.read(self.keys[i], start, stop, self.layer_positions)
        return x if x.shape[2] == self.eval_unit.crop else tile_frames(x, self.eval_unit.crop)
