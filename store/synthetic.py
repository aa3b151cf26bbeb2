"""Small finished stores of generated features: for trying the tools, for tests and for doctests.

``synthetic_store`` writes a real store (the same ``StoreWriter`` an extraction uses) whose tracks are
random features, labelled with a few genres and split like a dataset. With ``separable`` a model can
tell the genres apart: each genre's band of features carries one random time signal shared by every
feature of the band, a difference that survives per-track normalisation over time (which removes
any constant offset).

>>> import tempfile
>>> from mrnet.store.reader import FeatureStore
>>> store = FeatureStore.open(synthetic_store(tempfile.mkdtemp() + "/s.zarr", per_genre=2))
>>> store.tracks.height, store.genres["name"].to_list(), store.read("calm.000", 0, 10).shape
(6, ['calm', 'loud', 'mid'], (1, 1, 10, 48))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from mrnet.manifests.schema import TRACKS, genre_table, tag_table, validate, with_labels
from mrnet.store import statistics
from mrnet.store.format import Provenance, track_key
from mrnet.store.location import Location
from mrnet.store.writer import StoreWriter


def synthetic_store(
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
    codec: str = "none",
    offset: float = 0.0,
    with_statistics: bool = True,
    tags: bool = False,
    signal_layers: tuple[int, ...] | None = None,
) -> Path | str:
    """Write a finished store of ``per_genre`` tracks per genre; returns ``path`` (a path or URL).

    Track lengths are drawn from ``frames`` (inclusive). Tracks get official splits (4:1:1 per genre)
    when ``splits``, else ``folds`` round-robin folds (5 by default). ``offset`` is added to every
    value (real features are not centred). Like an extraction, it records the feature statistics
    (store/statistics.py) unless ``with_statistics`` is False (a store from before they existed).
    With ``tags`` the store is multi-label: each track is tagged with its genre's name, and every
    other track also with ``even`` (a tag the features do not show); no track has a genre.
    ``signal_layers``: the layers (positions) whose features carry the genres' signal (default every
    layer); the others are noise alone, the store a layer-wise probe must tell apart.
    """
    rng = np.random.default_rng(seed)
    frame_rate = 62.5 if feature == "mel" else 50.0
    prov = Provenance(
        feature=feature,
        layers=list(range(layers)),
        dim=dim,
        frame_rate=frame_rate,
        channels=channels,
        model=None if feature == "mel" else "synthetic",
        dataset="synthetic",
        extraction={"chunk_frames": 100, "codec": codec},
        task="multi-label" if tags else "single-label",
        labeling="tags" if tags else "",
    )
    location = Location.parse(path)
    rows: list[dict] = []
    sums: dict[str, statistics.Sums] = {}
    with StoreWriter.open(location, prov, command="synthetic_store") as writer:
        for g, genre in enumerate(genres):
            for i in range(per_genre):
                tid = f"{genre}.{i:03d}"
                n = int(rng.integers(frames[0], frames[1] + 1))
                x = rng.normal(size=(channels, layers, n, dim)).astype(np.float32)
                if separable:
                    band = dim // len(genres)
                    signal = strength * rng.normal(size=n).astype(np.float32)[:, None]
                    carriers = slice(None) if signal_layers is None else list(signal_layers)
                    x[:, carriers, :, g * band : (g + 1) * band] += signal
                x += offset
                key = track_key(tid)
                split = ("train", "train", "train", "train", "valid", "test")[i % 6] if splits else None
                fold = None if splits else i % (folds or 5)
                group = statistics.group_key(split, fold, True)
                sums[group] = (
                    sums[group] + statistics.Sums.of(x, prov.dtype)
                    if group in sums
                    else statistics.Sums.of(x, prov.dtype)
                )
                labels = [genre, *(["even"] if i % 2 == 0 else [])]
                rows.append(
                    dict(
                        track_id=tid,
                        key=key,
                        path=f"{genre}/{tid}.wav",
                        genre=None if tags else genre,
                        label=None,
                        genres_all=labels if tags else [genre],
                        tags=labels if tags else None,
                        artist=None,
                        split=split,
                        fold=fold,
                        duration=n / frame_rate,
                        sample_rate=16000,
                        channels=channels,
                        frames=n,
                        checksum=writer.write_track(key, x),
                        status="done",
                        error=None,
                    )
                )
        tracks = pl.DataFrame(rows, schema=TRACKS)
        table = tag_table(tracks) if tags else genre_table(tracks)
        tracks = validate(tracks if tags else with_labels(tracks, table), TRACKS, name="tracks")
        writer.commit_unit("0000-synthetic", tracks)
        writer.finalize(tracks, table)
    if with_statistics:
        statistics.write(location, sums, how="summed while the synthetic store was written")
    return path
