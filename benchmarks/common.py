"""What every benchmark shares: the machine, the sizes of a run, the data, child processes, timing.

**Data.** Real music comes from Debian's game-music packages (``apt-get download`` + ``dpkg -x``, no
root needed): ASC's soundtrack ships as MP3. It is cut into 30 s clips, resampled to 44.1 kHz stereo
and written as MP3 (soundfile/libsndfile's LAME encoder), laid out as a ``folder`` dataset
``ROOT/<genre>/<name>.mp3`` with one "genre" per source song. Without apt (or offline), clips are
generated (notes with harmonics and decays, noise bursts; ``benchmarks.store_layout.music_like``) and
the results say so.

**WavLM.** No weights can be downloaded here, and throughput does not depend on weight values:
``transformers.WavLMConfig()``'s defaults are WavLM-base's architecture (12 layers, 768 wide, the same
convolutional front end), so a randomly initialised model with a fixed seed, written with
``save_pretrained``, stands in for ``microsoft/wavlm-base`` and is passed as ``--model``.

**Child processes.** Every configuration whose memory or timing must not be disturbed by another runs
in its own Python process (``python -m benchmarks._child``), which the parent samples for resident
memory (the sum over the process and its children, e.g. DataLoader workers, and PSS so shared pages
count once).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MRNET_BENCH_CACHE", Path.home() / ".cache" / "mrnet" / "bench"))
RESULTS = REPO / "benchmarks" / "results"
MUSIC_PACKAGES = ("asc-music",)  # MP3 soundtrack; fb-music-high (XM) and xblast-tnt-musics (raw) libsndfile cannot read
WAVLM_SEED = 0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- sizes of a run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """How big each measurement is. ``cpu`` sizes keep a full run near 15 minutes on 2 cores."""

    name: str
    device: str
    # extraction (figures 1, 2): MP3 clips of clip_seconds, the batch and unit size of the run
    extract_clips: int
    clip_seconds: float
    batch_size: int
    unit_size: int
    rounds: int  # interleaved repetitions of the WavLM measurements (best of each side is kept)
    ceiling_clips: int  # 30 s clips for the pipeline-ceiling runs (model stubbed)
    # write (figure 3): disk test size
    disk_test_mb: int
    # loader (figure 4)
    loader_tracks: int
    loader_crops: int
    loader_repeat: int
    # training (figure 5)
    train_tracks: int
    train_batch: int
    train_steps: int
    train_warmup: int
    # memory (figure 6): extraction clips (short clips, small units) and training tracks, two sizes each
    memory_clip_seconds: float
    memory_extract_clips: tuple[int, int]
    memory_unit_size: int
    memory_train_tracks: tuple[int, int]


PROFILES = {
    "cpu": Profile("cpu-full", "cpu", extract_clips=4, clip_seconds=30.0, batch_size=2, unit_size=2, rounds=2, ceiling_clips=24, disk_test_mb=1024,
                   loader_tracks=24, loader_crops=300, loader_repeat=5, train_tracks=48, train_batch=4, train_steps=3,
                   train_warmup=1, memory_clip_seconds=5.0, memory_extract_clips=(12, 48), memory_unit_size=2,
                   memory_train_tracks=(48, 192)),
    "cpu-quick": Profile("cpu-quick", "cpu", extract_clips=4, clip_seconds=10.0, batch_size=2, unit_size=2, rounds=2, ceiling_clips=16, disk_test_mb=256,
                         loader_tracks=8, loader_crops=200, loader_repeat=3, train_tracks=16, train_batch=2, train_steps=2,
                         train_warmup=1, memory_clip_seconds=5.0, memory_extract_clips=(4, 16), memory_unit_size=1,
                         memory_train_tracks=(40, 160)),
    "cuda": Profile("cuda-full", "cuda", extract_clips=256, clip_seconds=30.0, batch_size=8, unit_size=16, rounds=3, ceiling_clips=256, disk_test_mb=4096,
                    loader_tracks=64, loader_crops=1000, loader_repeat=5, train_tracks=480, train_batch=48, train_steps=20,
                    train_warmup=3, memory_clip_seconds=30.0, memory_extract_clips=(64, 256), memory_unit_size=16,
                    memory_train_tracks=(480, 1440)),
    "cuda-quick": Profile("cuda-quick", "cuda", extract_clips=64, clip_seconds=30.0, batch_size=8, unit_size=16, rounds=2, ceiling_clips=64, disk_test_mb=1024,
                          loader_tracks=16, loader_crops=300, loader_repeat=3, train_tracks=144, train_batch=48, train_steps=8,
                          train_warmup=2, memory_clip_seconds=30.0, memory_extract_clips=(32, 96), memory_unit_size=16,
                          memory_train_tracks=(480, 960)),
}


def pick_profile(device: str, quick: bool) -> Profile:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return PROFILES[device + ("-quick" if quick else "")]


@dataclass
class Context:
    """What a figure's ``run`` gets: sizes, a work folder, and what earlier figures of this run left."""

    profile: Profile
    work: Path
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return self.profile.device


# --- the machine ----------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _disk(path: Path) -> dict:
    """The block device and file system under ``path``."""
    out: dict[str, Any] = {"path": str(path)}
    with contextlib.suppress(Exception):
        usage = shutil.disk_usage(path)
        out.update(total_gb=round(usage.total / 1e9, 1), free_gb=round(usage.free / 1e9, 1))
    with contextlib.suppress(Exception):
        import psutil

        best = None
        for part in psutil.disk_partitions(all=True):
            if str(path).startswith(part.mountpoint) and (best is None or len(part.mountpoint) > len(best.mountpoint)):
                best = part
        if best is not None:
            out.update(device=best.device, fstype=best.fstype, mountpoint=best.mountpoint)
            name = Path(best.device).name
            base = re.sub(r"p?\d+$", "", name) if not Path(f"/sys/block/{name}").exists() else name
            rot = Path(f"/sys/block/{base}/queue/rotational")
            if rot.exists():
                out["rotational"] = rot.read_text().strip() == "1"
            model = Path(f"/sys/block/{base}/device/model")
            if model.exists():
                out["model"] = model.read_text().strip()
    return out


def machine(work: Path) -> dict:
    import psutil
    import torch

    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1), "count": torch.cuda.device_count(),
               "cuda": torch.version.cuda}
    virt = None
    with contextlib.suppress(Exception):
        virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    if virt is None and "hypervisor" in Path("/proc/cpuinfo").read_text():
        virt = "virtual machine (hypervisor flag set)"
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "disk": _disk(work),
        "gpu": gpu,
        "virtualization": virt,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": _versions(),
    }


def _versions() -> dict:
    from importlib.metadata import version

    out = {}
    for name in ("torch", "transformers", "zarr", "numpy", "soundfile", "soxr", "numcodecs"):
        with contextlib.suppress(Exception):
            out[name] = version(name)
    return out


def machine_slug(info: dict, device: str) -> str:
    if device == "cuda" and info.get("gpu"):
        name = info["gpu"]["name"]
    else:
        name = f"{info['cpu']}-{info['usable_cpus']}c"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- WavLM-base, random weights ---------------------------------------------------------------------
def wavlm_base_random() -> str:
    """A WavLM-base-shaped model (``WavLMConfig()`` defaults), seeded random weights, saved locally."""
    path = CACHE / "wavlm-base-random"
    if not (path / "config.json").exists():
        import torch
        from transformers import WavLMConfig, WavLMModel

        log(f"creating a random WavLM-base in {path}")
        torch.manual_seed(WAVLM_SEED)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        WavLMModel(WavLMConfig()).eval().save_pretrained(tmp)
        tmp.rename(path)
    return str(path)


# --- music ------------------------------------------------------------------------------------------
def music_sources() -> tuple[list[Path], str]:
    """Source songs (paths) and a description of where they came from."""
    base = CACHE / "music"
    found = sorted((base / "root").rglob("*.mp3")) if (base / "root").exists() else []
    if not found and shutil.which("apt-get") and shutil.which("dpkg"):
        debs = base / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        try:
            log(f"fetching {', '.join(MUSIC_PACKAGES)} with apt-get download")
            subprocess.run(["apt-get", "download", *MUSIC_PACKAGES], cwd=debs, check=True, capture_output=True, timeout=300)
            for deb in debs.glob("*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(base / "root")], check=True, capture_output=True, timeout=300)
            found = sorted((base / "root").rglob("*.mp3"))
        except (subprocess.SubprocessError, OSError) as err:
            log(f"apt-get download failed ({err}); using generated music")
    if found:
        return found, f"Debian package {', '.join(MUSIC_PACKAGES)} (MP3 game soundtrack, {len(found)} songs), fetched with apt-get download"
    return [], "generated music (apt-get unavailable): notes with harmonics and decays, noise bursts"


def _songs(sources: list[Path]) -> list[tuple[str, float, Path | None]]:
    """``(name, seconds, path)`` per source song; generated songs have no path."""
    import soundfile as sf

    if sources:
        return [(p.stem.replace("_", "-"), float(sf.info(str(p)).duration), p) for p in sources]
    return [(f"generated-{g}", 300.0, None) for g in range(3)]


def _song_audio(name: str, path: Path | None):
    """Stereo float32 ``(samples, 2)`` at 44.1 kHz of one source song."""
    import numpy as np
    import soundfile as sf
    import soxr

    if path is not None:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        data = data[:, :2] if data.shape[1] >= 2 else np.repeat(data, 2, axis=1)
        if rate != 44100:
            data = soxr.resample(data, rate, 44100, quality="HQ").astype(np.float32)
        return data
    from benchmarks.store_layout import music_like

    x = music_like(300.0, 44100, np.random.default_rng(int(name.rsplit("-", 1)[1])))
    return np.stack([x, np.roll(x, 441)], axis=1)


def mp3_dataset(clips: int, seconds: float) -> tuple[Path, str]:
    """A folder dataset ``ROOT/<song>/<clip>.mp3`` of ``clips`` MP3 clips of ``seconds`` (44.1 kHz stereo).

    Clips are cut round-robin over the songs (so every "genre" is present), encoded once and cached;
    more clips than the music holds are copies under new names (decoding costs the same).
    """
    import numpy as np
    import soundfile as sf

    sources, described = music_sources()
    tag = "asc" if sources else "generated"
    pool = CACHE / "clips" / f"{tag}-{seconds:g}s"
    songs = _songs(sources)
    order = []  # (song, index) round-robin
    counts = [int(sec // seconds) for _, sec, _ in songs]
    for i in range(max(counts)):
        order.extend((s, i) for s, c in zip(range(len(songs)), counts) if i < c)
    wanted = order[: min(clips, len(order))]
    missing: dict[int, list[int]] = {}
    for s, i in wanted:
        if not (pool / songs[s][0] / f"{songs[s][0]}-{i:03d}.mp3").exists():
            missing.setdefault(s, []).append(i)
    if missing:
        log(f"cutting {sum(map(len, missing.values()))} MP3 clips of {seconds:g} s into {pool}")
    for s, idx in missing.items():
        name, _, path = songs[s]
        data = _song_audio(name, path)
        n = int(seconds * 44100)
        (pool / name).mkdir(parents=True, exist_ok=True)
        for i in idx:
            target = pool / name / f"{name}-{i:03d}.mp3"
            tmp = target.with_name(target.stem + ".tmp.mp3")
            sf.write(str(tmp), np.ascontiguousarray(data[i * n : (i + 1) * n]), 44100, format="MP3")
            tmp.rename(target)
    root = CACHE / "datasets" / f"{tag}-{seconds:g}s-{clips}"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        for k in range(clips):
            s, i = wanted[k % len(wanted)]
            name = songs[s][0]
            copy = f"-copy{k // len(wanted)}" if k >= len(wanted) else ""
            dest = root / name / f"{name}-{i:03d}{copy}.mp3"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pool / name / f"{name}-{i:03d}.mp3", dest)
        (root / "done").write_text("")
    return root, described


def dataset_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.mp3"))


# --- synthetic feature stores (loader, training, memory) ------------------------------------------
def feature_store(path: Path, tracks: int, *, seconds: float = 30.0, layers: int = 13, dim: int = 768, dtype: str = "float16",
                  codec: str = "none", chunk_frames: int | None = None, genres: int = 3, seed: int = 0, memmap: Path | None = None) -> Path:
    """A finalized WavLM-shaped store of random features (and optionally the same data as one .npy memmap).

    Features are random normal: timing of uncompressed reads does not depend on values. The manifest
    has an official split (train/valid/test = 2/1/1, so even a small store fills whole evaluation
    batches) and ``genres`` balanced labels, so ``mrnet-train`` accepts it.
    """
    import numpy as np
    import polars as pl

    from mrnet.manifests.schema import TRACKS, genre_table, validate, with_labels
    from mrnet.store import Location, Provenance, StoreWriter

    from mrnet.extract.config import ExtractConfig

    chunk_frames = chunk_frames or ExtractConfig.__dataclass_fields__["chunk_frames"].default  # the shipped default
    done = path / "manifest" / "tracks.parquet"
    if done.exists() and (memmap is None or memmap.exists()):
        from mrnet.store.reader import FeatureStore

        if FeatureStore.open(str(path)).provenance.extraction.get("chunk_frames") == chunk_frames:
            return path
    frames = int(seconds * 50)
    prov = Provenance(feature="wavlm", layers=list(range(layers)), dim=dim, frame_rate=50.0, channels=1, dtype=dtype,
                      model="benchmark (random features)", dataset="bench", labeling="",
                      extraction={"chunk_frames": chunk_frames, "codec": codec})
    writer = StoreWriter.open(Location.parse(path), prov, overwrite=True)
    rng = np.random.default_rng(seed)
    mm = None
    if memmap is not None:
        mm = np.lib.format.open_memmap(memmap, mode="w+", dtype=dtype, shape=(tracks, 1, layers, frames, dim))
    rows = []
    for i in range(tracks):
        x = rng.standard_normal((1, layers, frames, dim), dtype=np.float32).astype(dtype)
        key = f"t{i:05d}"
        crc = writer.write_track(key, x)
        if mm is not None:
            mm[i] = x
        split = ("train", "train", "valid", "test")[i % 4]
        rows.append({"track_id": key, "key": key, "path": f"{key}.mp3", "genre": f"g{i % genres}", "label": None,
                     "genres_all": [f"g{i % genres}"], "artist": None, "split": split, "fold": None, "duration": seconds,
                     "sample_rate": 16000, "channels": 1, "frames": frames, "checksum": crc, "status": "done", "error": None})
    if mm is not None:
        mm.flush()
        del mm
    tracks_df = pl.DataFrame(rows, schema=TRACKS)
    genres_df = genre_table(tracks_df)
    tracks_df = validate(with_labels(tracks_df, genres_df), TRACKS, name="bench tracks")
    writer.finalize(tracks_df, genres_df)
    return path


# --- child processes with memory sampling ---------------------------------------------------------
def run_child(target: str, args: dict, *, timeout: float = 1800, sample_every: float = 0.1, env: dict | None = None) -> dict:
    """Run ``module:function(**args)`` in a fresh Python; return its result plus wall time and peak memory.

    Memory: ``peak_rss_mb`` is the highest sampled sum of RSS over the process tree, ``peak_pss_mb`` the
    same with PSS (pages shared between processes, e.g. copy-on-write after a fork, split between
    them), ``peak_pss_anon_mb`` the anonymous part of PSS (heap, tensors: what the kernel cannot drop
    and re-read, unlike mapped files), ``maxrss_mb`` the kernel's exact peak RSS of the main process
    (``VmHWM``, not sampled).
    """
    import psutil

    with tempfile.TemporaryDirectory(prefix="mrnet-bench-") as tmp:
        argf, outf = Path(tmp) / "args.json", Path(tmp) / "out.json"
        argf.write_text(json.dumps(args))
        cmd = [sys.executable, "-m", "benchmarks._child", target, str(argf), str(outf)]
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peaks = {"rss": 0, "pss": 0, "pss_anon": 0}
        stop = threading.Event()
        lines: list[str] = []

        def sample():
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            tick = 0
            while not stop.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                    peaks["rss"] = max(peaks["rss"], sum(p.memory_info().rss for p in procs))
                    if tick % 3 == 0:  # smaps_rollup walks the page tables: every 3rd sample
                        pss = anon = 0
                        for p in procs:
                            roll = _smaps_rollup(p.pid)
                            pss += roll.get("Pss", 0)
                            anon += roll.get("Pss_Anon", 0)
                        peaks["pss"] = max(peaks["pss"], pss)
                        peaks["pss_anon"] = max(peaks["pss_anon"], anon)
                except psutil.Error:
                    pass
                tick += 1
                stop.wait(sample_every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def pump():
            for line in proc.stdout:
                lines.append(line)
                if os.environ.get("MRNET_BENCH_VERBOSE"):
                    print("    | " + line, end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{target} timed out after {timeout:.0f} s; last output:\n{''.join(lines[-30:])}") from None
        finally:
            stop.set()
            sampler.join()
            reader.join(timeout=5)
        wall = time.perf_counter() - began
        if proc.returncode != 0 or not outf.exists():
            raise RuntimeError(f"{target} failed (exit {proc.returncode}); last output:\n{''.join(lines[-40:])}")
        result = json.loads(outf.read_text())
    result.setdefault("memory", {}).update(peak_rss_mb=round(peaks["rss"] / 2**20, 1), peak_pss_mb=round(peaks["pss"] / 2**20, 1),
                                           peak_pss_anon_mb=round(peaks["pss_anon"] / 2**20, 1))
    result["process_wall_s"] = round(wall, 3)
    return result


def _smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in bytes (Linux >= 4.14; Pss_Anon >= 5.9); empty if unreadable."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


# --- small helpers ----------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return float(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2)


def jsonable(obj):
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(type(obj))
