"""What every feature engine is: the one interface the extraction pipeline and ``mrnet-predict`` use.

An engine turns one dataset file into its input (``load``: decoded audio, or an array a dataset
ships), turns a batch of inputs into features ``(channels, layers, frames, dim)`` (``extract``), and
says what it computes (``describe``), which the store records as its provenance. The pipeline has
one path for every kind: load on the I/O threads, extract in groups, write.

Audio engines share :class:`AudioInput` (decode, mix to mono or stereo, resample to the engine's
rate); an engine over shipped arrays writes its own ``load``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mrnet.extract import audio


@dataclass(frozen=True)
class SourceInfo:
    """What a dataset file was, for the manifest: seconds, its own sample rate and channel count."""

    duration: float
    sample_rate: int
    channels: int
    warning: str | None = None  # e.g. decoded far shorter than the file declares: kept, but marked


class Engine(Protocol):
    """One feature kind. Attributes are what a store of it holds per track."""

    feature: str  # provenance.feature: "wavlm", "mel", ...
    layers: list[int]  # stored layers (hidden states for WavLM; [0] for single-layer kinds)
    dim: int  # values per frame and channel
    frame_rate: float  # frames per second
    channels: int  # 1 mono, 2 stereo
    sample_rate: int  # of the audio the features are computed from

    def load(self, path: Path) -> tuple[np.ndarray, SourceInfo]:
        """The engine's input for one file, and what the file was; ``audio.AudioError`` naming a bad file."""
        ...

    def probe(self, path: Path) -> float:
        """Seconds of audio in a file, read cheaply (headers only): sizes a ``--dry-run``."""
        ...

    def seconds(self, item: np.ndarray) -> float:
        """Seconds of audio a loaded input holds: bounds how much a worker holds at once."""
        ...

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        """Features ``(channels, layers, frames, dim)`` float for each loaded input; ``ValueError``
        for an input too short for one frame."""
        ...

    def describe(self) -> dict[str, Any]:
        """``{"model", "model_revision", "extraction": {...}}``: what the store records about the engine."""
        ...


class AudioInput:
    """``load``/``probe``/``seconds`` for engines that compute features from audio: any file
    libsndfile decodes, mixed to ``self.channels`` and resampled to ``self.sample_rate``."""

    channels: int
    sample_rate: int

    def load(self, path: Path) -> tuple[np.ndarray, SourceInfo]:
        wave, info = audio.load_with_info(path, channels=self.channels, sample_rate=self.sample_rate)
        return wave, SourceInfo(info.duration, info.sample_rate, info.channels, info.shortfall)

    def probe(self, path: Path) -> float:
        return audio.probe(path).duration

    def seconds(self, item: np.ndarray) -> float:
        return item.shape[-1] / self.sample_rate


def features_of_file(engine: Engine, path: Path) -> np.ndarray:
    """Load and extract one file; ``audio.AudioError`` names a file that cannot be used."""
    item, _ = engine.load(Path(path))
    try:
        return engine.extract([item])[0]
    except (ValueError, RuntimeError) as err:
        raise audio.AudioError(f"{path}: {err}") from err
