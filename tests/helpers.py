"""Small generated stores and audio for tests. Everything here is tiny, seeded and fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrnet.store.synthetic import synthetic_store


def make_store(path: Path | str, **kwargs) -> Path:
    """``mrnet.store.synthetic.synthetic_store`` as a ``Path`` (see there for the options)."""
    return Path(synthetic_store(path, **kwargs))


def tone(seconds: float, sr: int = 16000, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A sine plus a little noise, ``(samples, channels)`` float32 as soundfile returns it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)
