"""The built-in demo dataset: procedurally made music in 4 genres, generated on first use, no download.

```
ROOT/ambient/ambient.000.wav ...    pad and drone chords, slow swells, no onsets
ROOT/arpeggio/arpeggio.000.wav ...  plucked arpeggios over a chord, 3-9 notes a second
ROOT/drums/drums.000.wav ...        drum patterns: pitch-swept kicks, noisy snares, toms
ROOT/groove/groove.000.wav ...      bass line plus hi-hats (sometimes a soft kick)
ROOT/labels.csv                     path, genre, split (train/valid/test 60/20/20 per genre, seeded)
```

30 tracks per genre of 8 s, 16 kHz mono 16-bit WAV (about 30 MB), read through the folder reader.
Each track draws its own tempo, key, notes, timbre, levels and noise, and some borrow a quiet layer
from another genre (a pad under an arpeggio, hi-hats over drums), so the genres overlap in spectrum
and a model has to use timbre and rhythm over time, not one average colour. Everything is numpy
vectorised; generation takes about a second.

``ROOT`` defaults to ``$MRNET_DEMO_DIR`` or ``~/.cache/mrnet/demo-v1``. Generation is atomic (a
temporary folder renamed into place) and idempotent (an existing demo is reused).

>>> split_counts(30), split_counts(3)
((18, 6, 6), (1, 1, 1))
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf

from mrnet.core.errors import UserError

from . import folder
from .base import Scan
from .registry import ReaderOptions, reader

GENRES = ("ambient", "arpeggio", "drums", "groove")
VERSION = "demo-v1"
SAMPLE_RATE = 16000
MARKER = "labels.csv"  # written last: a folder with it is a complete demo


def default_root() -> Path:
    """``$MRNET_DEMO_DIR`` or ``~/.cache/mrnet/demo-v1``."""
    env = os.environ.get("MRNET_DEMO_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mrnet" / VERSION


# -- sound sources ---------------------------------------------------------------------------------


def _hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69) / 12)


def _sustained(rng, freqs: np.ndarray, amps: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Sum of steady sinusoids in one inverse FFT (frequencies rounded to 1/duration Hz)."""
    spec = np.zeros(n // 2 + 1, dtype=np.complex128)
    bins = np.clip(np.rint(freqs * n / sr).astype(int), 1, n // 2 - 1)
    np.add.at(spec, bins, amps * np.exp(2j * np.pi * rng.random(bins.size)) * n / 2)
    return np.fft.irfft(spec, n)


def _pluck(freq: np.ndarray | float, length: int, sr: int, *, partials: int, tilt: float, tau: float) -> np.ndarray:
    """A decaying harmonic tone; higher partials die faster."""
    t = np.arange(length, dtype=np.float32) / sr
    h = np.arange(1, partials + 1, dtype=np.float32)[:, None]
    h = h[(h[:, 0] * freq) < sr / 2]
    tone = (h**-tilt * np.sin(np.float32(2 * np.pi * freq) * h * t) * np.exp(-t * h / np.float32(tau))).sum(axis=0)
    return tone * np.minimum(1.0, t / 0.004)


def _kick(length: int, sr: int, *, top: float, bottom: float, tau: float) -> np.ndarray:
    t = np.arange(length) / sr
    freq = bottom + (top - bottom) * np.exp(-t / 0.035)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / tau)


def _burst(rng, length: int, sr: int, *, tau: float, bright: int) -> np.ndarray:
    """Noise with an exponential decay; ``bright`` differences tilt it towards high frequencies."""
    x = rng.standard_normal(length + bright)
    for _ in range(bright):
        x = np.diff(x)
    return x / (2.0**bright) ** 0.5 * np.exp(-np.arange(length) / sr / tau)


def _place(out: np.ndarray, sound: np.ndarray, onsets: np.ndarray, gains: np.ndarray) -> None:
    for at, gain in zip(onsets, gains):
        piece = sound[: out.size - at]
        out[at : at + piece.size] += gain * piece


def _grid(rng, n: int, sr: int, *, bpm: tuple[float, float], per_beat: int) -> tuple[np.ndarray, int]:
    """Onset sample of every grid step, and the step length in samples."""
    step = int(sr * 60 / rng.uniform(*bpm) / per_beat)
    return np.arange(0, n, step), step


def _chord(rng, low: int) -> np.ndarray:
    shape = [(0, 4, 7, 11), (0, 3, 7, 10), (0, 5, 7, 12), (0, 4, 7, 14), (0, 3, 7, 12)][rng.integers(5)]
    return low + rng.integers(12) + np.array(shape)


# -- genres ----------------------------------------------------------------------------------------


def _ambient(rng, n: int, sr: int, level: float = 1.0) -> np.ndarray:
    """Two sustained chords with detuned partials, a drone an octave down, slow swells."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    notes = _chord(rng, 48)
    halves = (notes, notes + [0, 5, 7, -3, -5][rng.integers(5)])
    fade = 1 / (1 + np.exp(-(t - t[-1] / 2) / 0.4))
    tilt = rng.uniform(1.2, 2.5)
    for chord, weight in zip(halves, (1 - fade, fade)):
        h = np.arange(1, 6)
        freqs = (
            _hz(chord)[:, None, None] * h[None, :, None] * (1 + np.array([-1, 1]) * rng.uniform(0.001, 0.004))
        ).ravel()
        amps = np.broadcast_to((h**-tilt)[None, :, None], (chord.size, h.size, 2)).ravel()
        out += weight * _sustained(rng, freqs, amps, n, sr)
    out += 0.6 * np.sin(2 * np.pi * _hz(notes[0] - 12) * t)
    swell = 1 + 0.35 * np.sin(2 * np.pi * rng.uniform(0.08, 0.4) * t + rng.uniform(0, 6.3))
    return level * out * swell * np.minimum(1, t / rng.uniform(0.4, 1.5))


def _arpeggio(rng, n: int, sr: int, level: float = 1.0) -> np.ndarray:
    """Plucked notes cycling through a chord over two octaves."""
    onsets, step = _grid(rng, n, sr, bpm=(80, 140), per_beat=int(rng.choice([2, 3, 4])))
    tones = np.concatenate([_chord(rng, 55), _chord(rng, 55)[:3] + 12])
    pattern = [np.arange(tones.size), np.arange(tones.size)[::-1], rng.permutation(tones.size)][rng.integers(3)]
    which = pattern[np.arange(onsets.size) % pattern.size]
    tau, partials, tilt = rng.uniform(0.12, 0.5), int(rng.integers(4, 9)), rng.uniform(0.8, 1.8)
    out = np.zeros(n)
    for note in np.unique(which):
        sound = _pluck(_hz(tones[note]), min(4 * step, sr), sr, partials=partials, tilt=tilt, tau=tau)
        hits = onsets[which == note]
        _place(out, sound, hits, rng.uniform(0.55, 1.0, hits.size))
    return level * out


def _drums(rng, n: int, sr: int, level: float = 1.0) -> np.ndarray:
    """A 16-step drum pattern: kick on the one and more, snare on the backbeat, scattered toms."""
    onsets, _ = _grid(rng, n, sr, bpm=(80, 160), per_beat=4)
    pos = np.arange(onsets.size) % 16
    kick_steps = np.isin(pos, [0, *rng.choice([3, 6, 8, 10, 11, 14], size=int(rng.integers(1, 4)), replace=False)])
    snare_steps = np.isin(pos, [4, 12]) | (rng.random(onsets.size) < 0.05)
    tom_steps = (rng.random(onsets.size) < 0.12) & ~kick_steps & ~snare_steps
    out = np.zeros(n)
    kick = _kick(sr // 2, sr, top=rng.uniform(110, 170), bottom=rng.uniform(40, 60), tau=rng.uniform(0.12, 0.3))
    snare = _burst(rng, sr // 3, sr, tau=rng.uniform(0.06, 0.15), bright=1) + 0.6 * _kick(
        sr // 3, sr, top=260, bottom=rng.uniform(170, 220), tau=0.05
    )
    tom = _kick(sr // 2, sr, top=rng.uniform(200, 300), bottom=rng.uniform(90, 160), tau=rng.uniform(0.1, 0.25))
    for sound, mask, gain in ((kick, kick_steps, 1.0), (snare, snare_steps, 0.7), (tom, tom_steps, 0.6)):
        _place(out, sound, onsets[mask], gain * rng.uniform(0.7, 1.0, mask.sum()))
    return level * out


def _groove(rng, n: int, sr: int, level: float = 1.0) -> np.ndarray:
    """A syncopated bass line on eighths under steady hi-hats."""
    onsets, step = _grid(rng, n, sr, bpm=(85, 130), per_beat=4)
    eighth = onsets[::2]
    play = (rng.random(eighth.size) < 0.7) | (np.arange(eighth.size) % 8 == 0)
    root = 28 + rng.integers(12)
    notes = root + rng.choice([0, 0, 7, 12, 10, 5], size=eighth.size)
    out = np.zeros(n)
    tau, tilt = rng.uniform(0.12, 0.35), rng.uniform(0.9, 1.4)
    for note in np.unique(notes[play]):
        hits = eighth[play & (notes == note)]
        _place(
            out,
            _pluck(_hz(note), 2 * step, sr, partials=10, tilt=tilt, tau=tau),
            hits,
            rng.uniform(0.7, 1.0, hits.size),
        )
    hats = onsets if rng.random() < 0.5 else onsets[::2]
    accent = np.where(np.arange(hats.size) % 2 == 0, 1.0, rng.uniform(0.3, 0.7))
    _place(out, _burst(rng, step, sr, tau=rng.uniform(0.015, 0.05), bright=3), hats, 0.35 * accent)
    if rng.random() < 0.3:
        _place(out, _kick(sr // 3, sr, top=130, bottom=50, tau=0.15), onsets[::4], np.full(onsets[::4].size, 0.4))
    return level * out


_MAKERS = {"ambient": _ambient, "arpeggio": _arpeggio, "drums": _drums, "groove": _groove}
#: Quiet layers a track may borrow from another genre: genre -> (other genre, probability).
_BORROW = {
    "ambient": ("arpeggio", 0.25),
    "arpeggio": ("ambient", 0.4),
    "drums": ("groove", 0.3),
    "groove": ("ambient", 0.3),
}


def synthesize(genre: str, *, seconds: float = 8.0, sr: int = SAMPLE_RATE, seed: int = 0, index: int = 0) -> np.ndarray:
    """One demo track, float32 in [-1, 1], fully determined by (genre, seconds, sr, seed, index).

    >>> x = synthesize("drums", seconds=0.5, seed=1)
    >>> x.shape, x.dtype, bool(np.abs(x).max() <= 1)
    ((8000,), dtype('float32'), True)
    """
    rng = np.random.default_rng([seed, GENRES.index(genre), index])
    n = int(round(seconds * sr))
    x = _MAKERS[genre](rng, n, sr)
    x /= np.sqrt(np.mean(x**2)) + 1e-9
    other, chance = _BORROW[genre]
    if rng.random() < chance:
        layer = _MAKERS[other](rng, n, sr)
        x += rng.uniform(0.1, 0.3) * layer / (np.sqrt(np.mean(layer**2)) + 1e-9)
    colour = np.maximum(np.arange(n // 2 + 1), 1) ** -rng.uniform(0, 0.8)  # white to pinkish
    noise = np.fft.irfft((rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)) * colour, n)
    x += 10 ** (-rng.uniform(15, 35) / 20) * noise / (np.sqrt(np.mean(noise**2)) + 1e-9)
    return (x * rng.uniform(0.3, 0.9) / np.abs(x).max()).astype(np.float32)


def split_counts(per_genre: int) -> tuple[int, int, int]:
    """Train / valid / test tracks per genre: 60/20/20, at least one valid and test track from 3 tracks."""
    held = max(1, round(0.2 * per_genre)) if per_genre >= 3 else 0
    return per_genre - 2 * held, held, held


def _labels(per_genre: int, seed: int) -> pl.DataFrame:
    rows = []
    for g, genre in enumerate(GENRES):
        train, valid, test = split_counts(per_genre)
        splits = np.array(["train"] * train + ["valid"] * valid + ["test"] * test)
        splits = splits[np.random.default_rng([seed, g, 1_000_003]).permutation(per_genre)]
        rows += [
            {"path": f"{genre}/{genre}.{i:03d}.wav", "genre": genre, "split": str(s)} for i, s in enumerate(splits)
        ]
    return pl.DataFrame(rows)


def generate(root: Path, *, per_genre: int = 30, seconds: float = 8.0, seed: int = 0) -> Path:
    """Write the demo into ``root`` unless a complete one is there; atomic and safe to race.

    >>> import tempfile; d = Path(tempfile.mkdtemp()) / "demo"
    >>> sorted(p.name for p in generate(d, per_genre=3, seconds=0.2).iterdir())
    ['README.txt', 'ambient', 'arpeggio', 'drums', 'groove', 'labels.csv']
    >>> shutil.rmtree(d.parent)
    """
    root = Path(root)
    if (root / MARKER).is_file():
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(
            f"{root} exists but is not a complete mrnet demo (no {MARKER}); remove it or pass another --root for the demo"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))

    def write(genre: str, index: int) -> None:
        x = synthesize(genre, seconds=seconds, seed=seed, index=index)
        sf.write(
            tmp / genre / f"{genre}.{index:03d}.wav",
            np.round(x * 32767).astype(np.int16),
            SAMPLE_RATE,
            subtype="PCM_16",
        )

    try:
        for genre in GENRES:
            (tmp / genre).mkdir()
        jobs = [(genre, i) for genre in GENRES for i in range(per_genre)]
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # numpy releases the GIL
            list(pool.map(lambda job: write(*job), jobs))
        (tmp / "README.txt").write_text(
            f"mrnet {VERSION}: {len(GENRES)} genres x {per_genre} tracks x {seconds} s, {SAMPLE_RATE} Hz mono, seed {seed}.\n"
            "Generated by mrnet.extract.datasets.demo; safe to delete (it is made again on demand).\n"
        )
        _labels(per_genre, seed).write_csv(tmp / MARKER)
        try:
            tmp.rename(root)
        except OSError:
            if not (root / MARKER).is_file():  # lost a race to something that is not a demo
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure(root: Path | None = None) -> Path:
    """The demo folder (``root`` or :func:`default_root`), generated first if it is not there."""
    return generate(Path(root) if root is not None else default_root())


@reader("demo", features="mel", makes_root=ensure)  # Mel: WavLM weights need a download
def read(root: Path, options: ReaderOptions) -> Scan:
    """The generated folder, read by the folder reader with the labels table it was generated with."""
    return folder.read(root, replace(options, labels=root / MARKER))
