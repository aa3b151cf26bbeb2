"""Equal-length windows: how batching leaves every feature exactly as one-track-at-a-time would.

WavLM-base normalises its first convolution over the whole time axis (GroupNorm), so zero-padding a
shorter track in a batch changes every one of its frames. We therefore never pad. A track of up to
``window`` frames is one window of its own exact length; a longer track is cut into windows of exactly
``window`` frames at frame offsets 0, W, 2W, ... and one last window that ends at the track's end
(overlapping the one before). Stitching keeps, for every frame, the output of the first window that
covers it, so each output frame comes from exactly one window. Windows of equal sample length are
batched together; a window's output does not depend on what else is in the batch.

The sample span of a window follows the convolutional front end: ``samples = (frames - 1) * stride +
receptive`` (320 and 400 for WavLM), so windows start on the global frame grid and stitched frames sit
exactly where whole-track frames would. Samples past the last whole frame (< 20 ms) are dropped.

>>> plan(4, window=10)
[0]
>>> plan(25, window=10)
[0, 10, 15]
>>> import numpy as np
>>> parts = [(0, np.zeros((1, 10, 2))), (10, np.ones((1, 10, 2))), (15, 2 * np.ones((1, 10, 2)))]
>>> stitch(parts, 25)[0, :, 0].tolist()
[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Frame geometry of a strided convolutional front end."""

    stride: int  # samples per frame (320 for WavLM)
    receptive: int  # samples seen by one frame (400 for WavLM)

    @classmethod
    def from_convs(cls, kernels: list[int], strides: list[int]) -> Geometry:
        receptive, jump = 1, 1
        for k, s in zip(kernels, strides):
            receptive += (k - 1) * jump
            jump *= s
        return cls(stride=jump, receptive=receptive)

    def frames(self, samples: int) -> int:
        return 0 if samples < self.receptive else (samples - self.receptive) // self.stride + 1

    def samples(self, frames: int) -> int:
        return (frames - 1) * self.stride + self.receptive


def plan(frames: int, *, window: int) -> list[int]:
    """Start frames of the windows covering ``frames`` frames."""
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, window))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return starts


def stitch(parts: list[tuple[int, np.ndarray]], frames: int) -> np.ndarray:
    """Join window outputs ``(start, (..., T_w, D))`` into ``(..., frames, D)``; earlier windows win."""
    first = parts[0][1]
    out = np.empty(first.shape[:-2] + (frames, first.shape[-1]), dtype=first.dtype)
    covered = 0
    for start, feats in sorted(parts, key=lambda p: p[0]):
        if start > covered:
            raise ValueError(f"windows leave frames {covered}..{start} uncovered")
        stop = start + feats.shape[-2]
        if stop > covered:
            out[..., covered:stop, :] = feats[..., covered - start :, :]
            covered = stop
    if covered != frames:
        raise ValueError(f"windows cover {covered} of {frames} frames")
    return out


def run_windowed(
    tracks: list[np.ndarray],
    forward: Callable[[np.ndarray], np.ndarray],
    *,
    geometry: Geometry,
    window: int,
    batch_size: int,
) -> list[np.ndarray]:
    """Features of each track ``(C, S)`` as ``(C, L, T, D)``, computing equal-length windows in batches.

    ``forward`` maps a batch of waveforms ``(B, samples)`` to ``(B, L, frames, D)``. Every channel of
    every track is its own batch element. A track too short for one frame raises ``ValueError``.
    """
    jobs: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # samples -> (track, channel, start)
    sizes = []
    for t, audio in enumerate(tracks):
        n = geometry.frames(audio.shape[1])
        if n < 1:
            raise ValueError(f"track {t}: {audio.shape[1]} samples is shorter than one frame ({geometry.receptive})")
        sizes.append(n)
        length = geometry.samples(min(n, window))
        for c in range(audio.shape[0]):
            for start in plan(n, window=window):
                jobs[length].append((t, c, start))
    parts: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
    for length, items in jobs.items():
        for batch in _batches(items, batch_size):
            wave = np.stack(
                [tracks[t][c, start * geometry.stride : start * geometry.stride + length] for t, c, start in batch]
            )
            out = forward(wave)  # (B, L, frames, D)
            for (t, c, start), feats in zip(batch, out):
                parts[(t, c)].append((start, feats))
    result = []
    for t, audio in enumerate(tracks):
        channels = [stitch(parts[(t, c)], sizes[t]) for c in range(audio.shape[0])]
        result.append(channels[0][None] if len(channels) == 1 else np.stack(channels))  # (C, L, T, D), no copy for mono
    return result


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
