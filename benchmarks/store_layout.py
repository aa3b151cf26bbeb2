"""Store layout measurements: inner chunk length along time x codec, on realistic sizes.

Writes a synthetic WavLM-sized store (13 layers x 768 float16, mono, 50 frames/s) through the real
``StoreWriter`` for each inner chunk length and codec, then measures:

- write throughput (MB/s of raw float16 features),
- bytes on disk per audio second (and the compression ratio),
- random 300-frame (6 s) crop reads per second, all 13 layers and 1 layer, through Zarr as
  ``FeatureStore.read`` does (warm page cache: decode + Zarr overhead, not disk),
- bytes fetched and requests per crop, counted by wrapping the Zarr store, and read amplification
  (bytes fetched / stored size of the frames the crop uses),
- an estimate of crops/s from object storage at ``--rtt-ms`` per request: Zarr 3.1 fetches the inner
  chunks of one shard one after another, so a crop costs ``requests x RTT`` plus the local time.
  One configuration is also timed with an injected per-request delay to check the estimate.

WavLM weights are not available here, so WavLM-sized features are random normal float16: compression
ratios on them are a lower bound for real features. Codecs are also measured on log-Mel features
(48 bins, 62.5 frames/s) of synthetic music-like audio (notes with harmonics and decays, noise bursts).

    python benchmarks/store_layout.py                       # the table in docs/store.md
    python benchmarks/store_layout.py --tracks 2 --crops 20  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
import zarr.storage

from mrnet.store import Location, Provenance, StoreWriter
from mrnet.store.format import CODECS

SECONDS = 30.0
CROP_SECONDS = 6.0


class CountingStore(zarr.storage.WrapperStore):
    """A Zarr store wrapper that counts ``get`` calls and bytes returned, optionally delaying each."""

    def __init__(self, store, delay: float = 0.0):
        super().__init__(store)
        self.delay, self.requests, self.bytes = delay, 0, 0

    def _with_store(self, store):
        return type(self)(store, self.delay)

    async def get(self, key, prototype=None, byte_range=None):
        if self.delay:
            await asyncio.sleep(self.delay)
        buf = await self._store.get(key, prototype, byte_range)
        self.requests += 1
        self.bytes += len(buf) if buf is not None else 0
        return buf


@dataclass(frozen=True)
class Kind:
    """A feature kind to lay out: its shape per track and how to make its data."""

    name: str
    layers: int
    dim: int
    frame_rate: float

    @property
    def frames(self) -> int:
        return int(SECONDS * self.frame_rate)

    @property
    def crop(self) -> int:
        return int(CROP_SECONDS * self.frame_rate)


WAVLM = Kind("wavlm (random normal)", 13, 768, 50.0)
MEL = Kind("log-Mel (synthetic music)", 1, 48, 62.5)


def random_tracks(kind: Kind, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((1, kind.layers, kind.frames, kind.dim), dtype=np.float32).astype(np.float16)
        for _ in range(n)
    ]


def music_like(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Notes (random pitch, 4 harmonics, exponential decay) on a beat grid, plus noise bursts and hiss."""
    t = np.arange(int(seconds * sr)) / sr
    x = 0.003 * rng.standard_normal(t.size)
    beat = 60.0 / rng.uniform(80, 140)
    for onset in np.arange(0, seconds, beat / 2):
        n = (t >= onset) & (t < onset + 4 * beat)
        tt = t[n] - onset
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        x[n] += sum(0.2 / h * np.sin(2 * np.pi * h * f0 * tt) for h in range(1, 5)) * np.exp(-3 * tt / beat)
        if rng.random() < 0.5:
            burst = tt < 0.05
            x[np.flatnonzero(n)[burst]] += 0.3 * rng.standard_normal(burst.sum()) * np.exp(-60 * tt[burst])
    return x.astype(np.float32)


def mel_tracks(n: int, seed: int = 0) -> list[np.ndarray]:
    import torch
    import torchaudio

    rng = np.random.default_rng(seed)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=MEL.dim)
    out = []
    for _ in range(n):
        spec = mel(torch.from_numpy(music_like(SECONDS, 16000, rng)))[:, : MEL.frames]  # (dim, frames)
        logmel = torch.log(spec + 1e-6).T.numpy()  # (frames, dim)
        out.append(logmel[None, None].astype(np.float16))
    return out


def write_store(
    root: Path, kind: Kind, tracks: list[np.ndarray], chunk: int, codec: str, repeat: int = 1
) -> tuple[float, int]:
    """Write ``tracks`` with StoreWriter (best of ``repeat``); return (seconds, bytes of the features on disk)."""
    prov = Provenance(
        feature="wavlm" if kind is WAVLM else "mel",
        layers=list(range(kind.layers)),
        dim=kind.dim,
        frame_rate=kind.frame_rate,
        channels=1,
        extraction={"chunk_frames": chunk, "codec": codec},
    )
    best = float("inf")
    for _ in range(repeat):
        writer = StoreWriter.open(Location.parse(root), prov, overwrite=True)
        start = time.perf_counter()
        for i, x in enumerate(tracks):
            writer.write_track(f"t{i:03d}", x)
        best = min(best, time.perf_counter() - start)
        writer.close()
    return best, sum(Location.parse(root).files("features").values())


def crop_reads(
    root: Path,
    kind: Kind,
    n_tracks: int,
    crops: int,
    layers: int,
    *,
    delay: float = 0.0,
    repeat: int = 1,
    seed: int = 1,
) -> dict:
    """Time ``crops`` random crops of ``layers`` consecutive layers (best of ``repeat`` passes); count requests and bytes."""
    store = CountingStore(zarr.storage.LocalStore(root, read_only=True), delay)
    arrays = [zarr.open_array(store, path=f"features/t{i:03d}", mode="r") for i in range(n_tracks)]
    rng = np.random.default_rng(seed)
    picks = [
        (
            rng.integers(n_tracks),
            rng.integers(0, kind.frames - kind.crop + 1),
            rng.integers(0, kind.layers - layers + 1),
        )
        for _ in range(crops)
    ]
    took = float("inf")
    for _ in range(repeat):
        store.requests = store.bytes = 0
        start = time.perf_counter()
        for t, s, first in picks:
            arrays[t][:, first : first + layers, s : s + kind.crop, :]
        took = min(took, time.perf_counter() - start)
    crop_bytes = layers * kind.crop * kind.dim * 2
    return {
        "per_s": crops / took,
        "s_per_crop": took / crops,
        "requests": store.requests / crops,
        "fetched": store.bytes / crops,
        "crop_bytes": crop_bytes,
    }


def measure(
    kind: Kind, tracks: list[np.ndarray], chunk: int, codec: str, crops: int, rtt: float, workdir: Path, repeat: int
) -> dict:
    root = workdir / f"{kind.layers}x{kind.dim}-c{chunk}-{codec}.zarr"
    took, disk = write_store(root, kind, tracks, chunk, codec, repeat)
    raw = sum(x.nbytes for x in tracks)
    row = {
        "kind": kind.name,
        "chunk": chunk,
        "codec": codec,
        "write_MBps": raw / took / 1e6,
        "disk_per_audio_s": disk / (len(tracks) * SECONDS),
        "ratio": raw / disk,
    }
    for layers in sorted({kind.layers, 1}, reverse=True):
        r = crop_reads(root, kind, len(tracks), crops if layers > 1 else crops * 3, layers, repeat=repeat)
        stored = r["crop_bytes"] / row["ratio"]
        row[f"L{layers}"] = {
            "crops_per_s": r["per_s"],
            "requests": r["requests"],
            "fetched_kB": r["fetched"] / 1e3,
            "amplification": r["fetched"] / stored,
            "remote_est_per_s": 1 / (r["requests"] * rtt + r["s_per_crop"]),
        }
    shutil.rmtree(root)
    return row


def check_latency_model(
    kind: Kind, tracks: list[np.ndarray], chunk: int, rtt: float, workdir: Path, crops: int = 10
) -> dict:
    """Time a few crops with ``rtt`` injected per request, against the ``requests x RTT`` estimate."""
    root = workdir / "latency.zarr"
    write_store(root, kind, tracks, chunk, "none")
    local = crop_reads(root, kind, len(tracks), crops, kind.layers)
    slow = crop_reads(root, kind, len(tracks), crops, kind.layers, delay=rtt)  # one pass: it is slow
    shutil.rmtree(root)
    return {
        "chunk": chunk,
        "rtt_ms": rtt * 1e3,
        "measured_per_s": slow["per_s"],
        "estimated_per_s": 1 / (local["requests"] * rtt + local["s_per_crop"]),
        "requests": local["requests"],
    }


def markdown(rows: list[dict], rtt_ms: float) -> str:
    head = (
        "| data | chunk | codec | write MB/s | disk kB / audio s | ratio | 13-layer crops/s | req/crop | fetched kB | ampl. "
        f"| est. crops/s @{rtt_ms:g} ms | 1-layer crops/s | req/crop | ampl. | est. crops/s @{rtt_ms:g} ms |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        many = r.get("L13") or {}
        one = r["L1"]
        cells = [
            r["kind"],
            r["chunk"],
            r["codec"],
            f"{r['write_MBps']:.0f}",
            f"{r['disk_per_audio_s'] / 1e3:.1f}",
            f"{r['ratio']:.2f}",
        ]
        cells += (
            [
                f"{many['crops_per_s']:.0f}",
                f"{many['requests']:.0f}",
                f"{many['fetched_kB']:.0f}",
                f"{many['amplification']:.2f}",
                f"{many['remote_est_per_s']:.1f}",
            ]
            if many
            else ["-"] * 5
        )
        cells += [
            f"{one['crops_per_s']:.0f}",
            f"{one['requests']:.1f}",
            f"{one['amplification']:.2f}",
            f"{one['remote_est_per_s']:.1f}",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=6, help="30 s tracks per store")
    ap.add_argument("--chunks", default="50,100,150,300,600", help="inner chunk lengths along time (frames)")
    ap.add_argument("--codecs", default=",".join(CODECS))
    ap.add_argument(
        "--crops", type=int, default=100, help="13-layer crops timed per configuration (3x as many 1-layer crops)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per measurement; the best is kept")
    ap.add_argument("--rtt-ms", type=float, default=20.0, help="per-request latency for the object-storage estimate")
    ap.add_argument("--no-mel", action="store_true", help="skip the log-Mel codec measurements (needs torchaudio)")
    ap.add_argument("--json", type=Path, help="also write every number here")
    args = ap.parse_args()
    chunks, codecs, rtt = [int(c) for c in args.chunks.split(",")], args.codecs.split(","), args.rtt_ms / 1e3

    print(
        f"# {platform.node()}: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
        f"zarr {zarr.__version__}, numpy {np.__version__}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="mrnet-layout-") as tmp:
        work = Path(tmp)
        wavlm = random_tracks(WAVLM, args.tracks)
        for chunk in chunks:
            for codec in codecs:
                rows.append(measure(WAVLM, wavlm, chunk, codec, args.crops, rtt, work, args.repeat))
                print(f"  done {WAVLM.name} chunk={chunk} codec={codec}", flush=True)
        if not args.no_mel:
            mel = mel_tracks(args.tracks)
            for chunk in chunks:
                for codec in codecs:
                    rows.append(measure(MEL, mel, chunk, codec, args.crops, rtt, work, args.repeat))
                    print(f"  done {MEL.name} chunk={chunk} codec={codec}", flush=True)
        check = check_latency_model(WAVLM, wavlm[:2], 100, rtt, work)
    print()
    print(markdown(rows, args.rtt_ms))
    print(
        f"\nlatency check (13-layer crops, chunk {check['chunk']}, {check['rtt_ms']:g} ms per request, "
        f"{check['requests']:.0f} requests/crop): measured {check['measured_per_s']:.2f} crops/s, "
        f"estimated {check['estimated_per_s']:.2f} crops/s"
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "latency_check": check}, indent=2))


if __name__ == "__main__":
    main()
