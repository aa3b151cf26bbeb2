"""The data the growth benchmark runs on: folder and FMA datasets of N short tracks, and their Mel stores.

**Audio.** One real 1 s clip (16 kHz mono WAV for the folder dataset, MP3 for FMA) and N hard links
to it (to a copy of it per 50,000, the file system's limit being 65,000) under the dataset's own layout: every track is a real file that decodes, the tree has N
entries like the real dataset's, and the disk holds one clip. Genres are 8 (``g0``..``g7``), dealt
round robin; artists, 5 tracks each.

**FMA.** ``fma_metadata/tracks.csv`` with the published file's three header lines and 52 columns (the
six the reader needs, the rest filler of the same width as the real ones), ``genres.csv``, and
``fma_large/XXX/XXXXXX.mp3``. Splits are 80/10/10 as in the real metadata.

**Stores.** ``mrnet-extract folder --features mel`` over the folder dataset (the real pipeline,
default unit size and chunking): what a user's first command makes. Everything is built once per
size under the work folder and reused (``.done`` markers).
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

GENRES = 8
PER_ARTIST = 5
CLIP_SECONDS = 1.0
FMA_COLUMNS = 52
LINKS = 50_000  # hard links per clip file (ext4 allows 65,000 per file)


def _clip(path: Path, fmt: str) -> Path:
    import soundfile as sf

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(16000 * CLIP_SECONDS)) / 16000
        wave = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)).astype(
            np.float32
        )
        tmp = path.with_name(path.name + ".tmp")
        sf.write(tmp, wave, 16000, format=fmt, **({"subtype": "PCM_16"} if fmt == "WAV" else {}))
        tmp.rename(path)
    return path


def _clips(work: Path, name: str, fmt: str):
    """Paths to hard-link tracks to, a fresh copy of the clip every :data:`LINKS` tracks (one set per dataset)."""
    base = _clip(work / f"clip.{fmt.lower()}", fmt)
    folder = work / "clips" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    k = 0
    while True:
        copy = folder / f"clip-{k}.{fmt.lower()}"
        shutil.copyfile(base, copy)
        for _ in range(LINKS):
            yield copy
        k += 1


def _done(folder: Path) -> bool:
    return (folder / ".done").exists()


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _dataset(work: Path, name: str, fmt: str, fill: Callable[[Path, Iterator[Path]], None]) -> Path:
    """``work/NAME/``, built by ``fill(root, clips)`` into a fresh folder unless an earlier build finished (``.done``)."""
    root = work / name
    if _done(root):
        return root
    _fresh(root)
    fill(root, _clips(work, name, fmt))
    (root / ".done").touch()
    return root


def folder_dataset(work: Path, n: int) -> Path:
    """``work/folder-N/``: ``g<k>/t<id>.wav`` for N tracks (hard links to one clip)."""
    return _dataset(work, f"folder-{n}", "WAV", lambda root, clips: _fill_folder(root, clips, n))


def _fill_folder(root: Path, clips: Iterator[Path], n: int) -> None:
    for g in range(GENRES):
        (root / f"g{g}").mkdir()
    for i, clip in zip(range(n), clips):
        os.link(clip, root / f"g{i % GENRES}" / f"t{i:07d}.wav")


def fma_dataset(work: Path, n: int) -> Path:
    """``work/fma-N/``: an FMA-large layout of N tracks (its ``tracks.csv`` has N rows)."""
    return _dataset(work, f"fma-{n}", "MP3", lambda root, clips: _fill_fma(root, clips, n))


def _fill_fma(root: Path, clips: Iterator[Path], n: int) -> None:
    meta = root / "fma_metadata"
    meta.mkdir()
    titles = [f"Genre{g}" for g in range(GENRES)]
    with (meta / "genres.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
        for g, title in enumerate(titles):
            w.writerow([g + 1, n // GENRES, 0, title, g + 1])
    needed = ["artist.id", "set.split", "set.subset", "track.genre_top", "track.genres", "track.genres_all"]
    filler = [f"track.extra{i}" for i in range(FMA_COLUMNS - 1 - len(needed))]
    names = needed + filler
    with (meta / "tracks.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", *(c.split(".")[0] for c in names)])
        w.writerow(["", *(c.split(".")[1] for c in names)])
        w.writerow(["track_id", *([""] * len(names))])
        pad = ["some text of a real column's width"] * len(filler)
        for i, clip in zip(range(n), clips):
            tid = i + 2
            g = i % GENRES
            split = "training" if i % 10 < 8 else "validation" if i % 10 == 8 else "test"
            w.writerow([tid, i // PER_ARTIST, split, "large", titles[g], f"[{g + 1}]", f"[{g + 1}]", *pad])
            folder = root / "fma_large" / f"{tid:06d}"[:3]
            if tid % 1000 == 0 or i == 0:
                folder.mkdir(parents=True, exist_ok=True)
            os.link(clip, folder / f"{tid:06d}.mp3")


def extract_store(dataset: str, out: str, manifests: str) -> dict:
    """``mrnet-extract folder --root DATASET --features mel --out OUT`` (a child of the benchmark)."""
    import time

    began = time.perf_counter()
    from mrnet.extract.config import ExtractConfig
    from mrnet.extract.pipeline import run

    summary = run(
        ExtractConfig(dataset="folder", root=Path(dataset), out=out, features="mel", manifests_dir=Path(manifests))
    )
    return {"seconds": time.perf_counter() - began, "tracks": summary.tracks.height, "failed": summary.failed.height}
