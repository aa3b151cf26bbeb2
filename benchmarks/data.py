"""The data the benchmarks run on: MP3 music laid out as a ``folder`` dataset, and WavLM-shaped stores.

**Music.** Real music comes from Debian's game-music packages (``apt-get download`` + ``dpkg -x``, no
root needed): ASC's soundtrack ships as MP3. It is cut into clips, resampled to 44.1 kHz stereo and
written as MP3 (soundfile/libsndfile's LAME encoder), laid out as ``ROOT/<genre>/<name>.mp3`` with one
"genre" per source song. Without apt (or offline), clips are generated (notes with harmonics and
decays, noise bursts; ``benchmarks.store_layout.music_like``) and the results say so.

**Feature stores.** Random WavLM-shaped features written through the real ``StoreWriter``, with the
store's default inner chunk length, optionally with the same arrays as one NumPy memmap.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from benchmarks.common import CACHE, log

MUSIC_PACKAGES = ("asc-music",)  # MP3 soundtrack; fb-music-high (XM) and xblast-tnt-musics (raw) libsndfile cannot read
RATE = 44100  # sample rate of the MP3 clips


# --- music ------------------------------------------------------------------------------------------
def music_sources() -> tuple[list[Path], str]:
    """Source songs (paths) and a description of where they came from."""
    base = CACHE / "music"
    found = sorted((base / "root").rglob("*.mp3")) if (base / "root").exists() else []
    if not found and shutil.which("apt-get") and shutil.which("dpkg"):
        found = _fetch_music(base)
    if found:
        return (
            found,
            f"Debian package {', '.join(MUSIC_PACKAGES)} (MP3 game soundtrack, {len(found)} songs), fetched with apt-get download",
        )
    return [], "generated music (apt-get unavailable): notes with harmonics and decays, noise bursts"


def _fetch_music(base: Path) -> list[Path]:
    """``apt-get download`` the music packages and unpack them under ``base/root``; [] when that fails."""
    debs = base / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    try:
        log(f"fetching {', '.join(MUSIC_PACKAGES)} with apt-get download")
        subprocess.run(["apt-get", "download", *MUSIC_PACKAGES], cwd=debs, check=True, capture_output=True, timeout=300)
        for deb in debs.glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(base / "root")], check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as err:
        log(f"apt-get download failed ({err}); using generated music")
        return []
    return sorted((base / "root").rglob("*.mp3"))


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
        if rate != RATE:
            data = soxr.resample(data, rate, RATE, quality="HQ").astype(np.float32)
        return data
    from benchmarks.store_layout import music_like

    x = music_like(300.0, RATE, np.random.default_rng(int(name.rsplit("-", 1)[1])))
    return np.stack([x, np.roll(x, 441)], axis=1)


def _round_robin(songs: list[tuple[str, float, Path | None]], seconds: float) -> list[tuple[int, int]]:
    """``(song, clip index)`` of every clip the songs hold, taking one clip of each song in turn."""
    counts = [int(sec // seconds) for _, sec, _ in songs]
    return [(s, i) for i in range(max(counts)) for s, c in enumerate(counts) if i < c]


def _cut_clips(pool: Path, songs, wanted: list[tuple[int, int]], seconds: float) -> None:
    """Encode the clips in ``wanted`` that ``pool`` does not hold yet as ``pool/<song>/<song>-NNN.mp3``."""
    import numpy as np
    import soundfile as sf

    missing: dict[int, list[int]] = {}
    for s, i in wanted:
        if not (pool / songs[s][0] / f"{songs[s][0]}-{i:03d}.mp3").exists():
            missing.setdefault(s, []).append(i)
    if missing:
        log(f"cutting {sum(map(len, missing.values()))} MP3 clips of {seconds:g} s into {pool}")
    n = int(seconds * RATE)
    for s, idx in missing.items():
        name, _, path = songs[s]
        data = _song_audio(name, path)
        (pool / name).mkdir(parents=True, exist_ok=True)
        for i in idx:
            target = pool / name / f"{name}-{i:03d}.mp3"
            tmp = target.with_name(target.stem + ".tmp.mp3")
            sf.write(str(tmp), np.ascontiguousarray(data[i * n : (i + 1) * n]), RATE, format="MP3")
            tmp.rename(target)


def mp3_dataset(clips: int, seconds: float) -> tuple[Path, str]:
    """A folder dataset ``ROOT/<song>/<clip>.mp3`` of ``clips`` MP3 clips of ``seconds`` (44.1 kHz stereo),
    and where its music came from.

    Clips are cut round-robin over the songs (so every "genre" is present), encoded once and cached;
    more clips than the music holds are copies under new names (decoding costs the same).
    """
    sources, described = music_sources()
    tag = "asc" if sources else "generated"
    songs = _songs(sources)
    pool = CACHE / "clips" / f"{tag}-{seconds:g}s"
    order = _round_robin(songs, seconds)
    wanted = order[: min(clips, len(order))]
    _cut_clips(pool, songs, wanted, seconds)
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
def feature_store(
    path: Path,
    tracks: int,
    *,
    seconds: float = 30.0,
    layers: int = 13,
    dim: int = 768,
    dtype: str = "float16",
    codec: str = "none",
    chunk_frames: int | None = None,
    genres: int = 3,
    seed: int = 0,
    memmap: Path | None = None,
) -> Path:
    """A finalized WavLM-shaped store of random features (and optionally the same data as one .npy memmap).

    Features are random normal: timing of uncompressed reads does not depend on values. The manifest
    has an official split (train/valid/test = 2/1/1, so even a small store fills whole evaluation
    batches) and ``genres`` balanced labels, so ``mrnet-train`` accepts it. (``mrnet.store.synthetic``
    writes Mel-shaped stores of varied lengths at a fixed chunk length, for tests.)
    """
    import numpy as np

    from mrnet.extract.config import ExtractConfig
    from mrnet.store import Location, Provenance, StoreWriter

    chunk_frames = chunk_frames or ExtractConfig.__dataclass_fields__["chunk_frames"].default  # the shipped default
    if _store_ready(path, chunk_frames, memmap):
        return path
    frames = int(seconds * 50)
    prov = Provenance(
        feature="wavlm",
        layers=list(range(layers)),
        dim=dim,
        frame_rate=50.0,
        channels=1,
        dtype=dtype,
        model="benchmark (random features)",
        dataset="bench",
        labeling="",
        extraction={"chunk_frames": chunk_frames, "codec": codec},
    )
    writer = StoreWriter.open(Location.parse(path), prov, overwrite=True)
    rng = np.random.default_rng(seed)
    mm = (
        None
        if memmap is None
        else np.lib.format.open_memmap(memmap, mode="w+", dtype=dtype, shape=(tracks, 1, layers, frames, dim))
    )
    rows = []
    for i in range(tracks):
        x = rng.standard_normal((1, layers, frames, dim), dtype=np.float32).astype(dtype)
        key = f"t{i:05d}"
        crc = writer.write_track(key, x)
        if mm is not None:
            mm[i] = x
        rows.append(_track_row(i, key, genres, seconds, frames, crc))
    if mm is not None:
        mm.flush()
        del mm
    _finalize(writer, rows)
    writer.close()
    return path


def _store_ready(path: Path, chunk_frames: int, memmap: Path | None) -> bool:
    """Whether ``path`` already holds a finished store of this chunk length (and the memmap exists)."""
    if not (path / "manifest" / "tracks.parquet").exists() or (memmap is not None and not memmap.exists()):
        return False
    from mrnet.store.reader import FeatureStore

    return FeatureStore.open(str(path)).provenance.extraction.get("chunk_frames") == chunk_frames


def _track_row(i: int, key: str, genres: int, seconds: float, frames: int, crc: str) -> dict:
    split = ("train", "train", "valid", "test")[i % 4]
    return {
        "track_id": key,
        "key": key,
        "path": f"{key}.mp3",
        "genre": f"g{i % genres}",
        "label": None,
        "genres_all": [f"g{i % genres}"],
        "artist": None,
        "split": split,
        "fold": None,
        "duration": seconds,
        "sample_rate": 16000,
        "channels": 1,
        "frames": frames,
        "checksum": crc,
        "status": "done",
        "error": None,
    }


def _finalize(writer, rows: list[dict]) -> None:
    import polars as pl

    from mrnet.manifests.schema import TRACKS, genre_table, validate, with_labels

    tracks = pl.DataFrame(rows, schema=TRACKS)
    genres = genre_table(tracks)
    writer.finalize(validate(with_labels(tracks, genres), TRACKS, name="bench tracks"), genres)
