"""Small generated stores and audio for tests. Everything here is tiny, seeded and fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from mrnet.manifests.schema import TRACKS, genre_table, validate, with_labels
from mrnet.store import Location, Provenance, StoreWriter, track_key


def make_store(
    path: Path | str,
    *,
    genres: tuple[str, ...] = ("calm", "loud", "mid"),
    per_genre: int = 6,
    feature: str = "mel",
    layers: int = 1,
    dim: int = 48,
    channels: int = 1,
    frames: tuple[int, int] = (320, 420),
    splits: bool = True,
    folds: int | None = None,
    separable: bool = True,
    strength: float = 2.0,
    seed: int = 0,
) -> Path:
    """Write a finished store of random features; with ``separable`` a model can tell the genres apart.

    The signal must survive MRNet's instance normalisation (each feature scaled to zero mean and unit
    variance over time), which removes any constant shift: each genre's band of features gets one
    random time signal (``strength`` x standard normal) shared by every feature of the band, so
    those features move together. Tracks get official splits (4:1:1 per genre) when ``splits``, else
    ``folds`` round-robin folds.
    """
    rng = np.random.default_rng(seed)
    frame_rate = 62.5 if feature == "mel" else 50.0
    prov = Provenance(
        feature=feature,
        layers=list(range(layers)),
        dim=dim,
        frame_rate=frame_rate,
        channels=channels,
        model=None if feature == "mel" else "tiny-test",
        dataset="synthetic",
        extraction={"chunk_frames": 100, "codec": "none"},
    )
    writer = StoreWriter.open(Location.parse(path), prov)
    rows = []
    for g, genre in enumerate(genres):
        for i in range(per_genre):
            tid = f"{genre}.{i:03d}"
            n = int(rng.integers(frames[0], frames[1] + 1))
            x = rng.normal(size=(channels, layers, n, dim)).astype(np.float32)
            if separable:
                band = dim // len(genres)
                x[..., g * band : (g + 1) * band] += strength * rng.normal(size=n).astype(np.float32)[:, None]
            k = track_key(tid)
            crc = writer.write_track(k, x)
            split = ("train", "train", "train", "train", "valid", "test")[i % 6] if splits else None
            rows.append(
                dict(track_id=tid, key=k, path=f"{genre}/{tid}.wav", genre=genre, label=None, genres_all=[genre],
                     artist=None, split=split, fold=None if splits else i % (folds or 5), duration=n / frame_rate,
                     sample_rate=16000, channels=channels, frames=n, checksum=crc, status="done", error=None)
            )
    tracks = pl.DataFrame(rows, schema=TRACKS)
    genres_frame = genre_table(tracks)
    tracks = validate(with_labels(tracks, genres_frame), TRACKS, name="tracks")
    writer.commit_unit("0000-synthetic", tracks)
    writer.finalize(tracks, genres_frame)
    return Path(path)


def tone(seconds: float, sr: int = 16000, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A sine plus a little noise, ``(samples, channels)`` float32 as soundfile returns it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)
