"""A real-music benchmark anyone can rebuild from Debian packages: ``python -m benchmarks.realmusic``.

**The data.** Debian ships the soundtracks of free games as ordinary packages. Each package with at
least ``MIN_TRACKS`` pieces of music of 30 s or more that libsndfile reads (OGG Vorbis, Opus) is one
class: a game's soundtrack is one composer or one team with one style, the way an FMA genre is one
label over many artists. ``apt-get download`` + ``dpkg -x`` fetch them (no root needed), into
``$MRNET_BENCH_CACHE/realmusic`` (default ``~/.cache/mrnet/bench``); nothing is committed.

Each piece (the "source track") gives up to ``CLIPS_PER_TRACK`` 30 s clips, non-overlapping and
spread over the piece, and each class at most ``CLIPS_PER_CLASS`` clips (taken round-robin over its
pieces, so a class with few long pieces does not come from one of them). **Splits are by source
track**: every clip of a piece is in the same split, so no piece is on both sides; per class the
pieces are shuffled with a fixed seed and dealt to test and valid until each holds about 20 % of the
class's clips (at least one piece each), the rest to train.

The result is a ``folder`` dataset as a user would have it::

    ROOT/audio/<class>/<piece>-<k>.flac     30 s clips at the source's rate and channels (FLAC)
    ROOT/labels.csv                          path, genre, artist (= the source piece), split

extracted with ``mrnet-extract folder --root ROOT/audio --labels ROOT/labels.csv --features mel``.
Packages left out, and why: ``asc-music`` and ``lincity-ng-data`` (3 pieces each: a class needs a
piece in each split and two to train on), ``fb-music-high``, ``pingus-data``, ``tomatoes-data``,
``tecnoballz-data`` (tracker modules, which libsndfile cannot decode), ``xblast-tnt-musics`` (raw
PCM without a header), ``boswars-data`` (no piece of 30 s).

``python -m benchmarks.realmusic`` builds the dataset and the store, then runs the measured grid
(``benchmarks.realmusic_runs``) and writes ``docs/results.md``; ``--build-only`` stops after the store.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import CACHE, log

HOME = CACHE / "realmusic"
CLIP_SECONDS = 30.0
CLIPS_PER_TRACK = 6
CLIPS_PER_CLASS = 60
MIN_TRACKS = 4
SEED = 0


@dataclass(frozen=True)
class Source:
    """One class: a Debian package and where its music is inside it."""

    name: str  # the class name
    package: str
    pattern: str  # glob under the unpacked package (or inside ``archive``)
    archive: str | None = None  # a zip (Quake-style .pk3) under the package that holds the files
    stems: tuple[str, ...] = ()  # Frets on Fire songs come as stems in one folder: mixed together


SOURCES = (
    Source(
        "blobwars", "blobwars-data", "usr/share/games/blobwars/music/[a-z]*[!s]"
    ),  # OGG files without an extension (not *.tags)
    Source("colobot", "colobot-common-sounds", "usr/share/games/colobot/music/*.ogg"),
    Source(
        "drascula", "drascula-music", "usr/share/scummvm/drascula/audio/*.ogg"
    ),  # en/ de/ ... hold the same tracks again
    Source("extremetuxracer", "extremetuxracer-data", "usr/share/games/etr/music/*.ogg"),
    Source(
        "fretsonfire-muldjord",
        "fretsonfire-songs-muldjord",
        "usr/share/games/fretsonfire/data/songs/*/*/song.ogg",
        stems=("guitar.ogg", "rhythm.ogg"),
    ),
    Source(
        "fretsonfire-sectoid",
        "fretsonfire-songs-sectoid",
        "usr/share/games/fretsonfire/data/songs/*/*/song.ogg",
        stems=("guitar.ogg", "rhythm.ogg"),
    ),
    Source("hyperrogue", "hyperrogue-music", "usr/share/hyperrogue/music/*.ogg"),
    Source("nexuiz", "nexuiz-music", "sound/cdtracks/*.ogg", archive="usr/share/games/nexuiz/data/music.pk3"),
    Source("planetblupi", "planetblupi-music-ogg", "usr/share/planetblupi/music/*.ogg"),
    Source("pushover", "pushover-data", "usr/share/pushover/themes/*.ogg"),
    Source("singularity", "singularity-music", "usr/share/games/singularity/music/**/*.ogg"),
    Source("warzone2100", "warzone2100-music", "usr/share/games/warzone2100/music/**/*.opus"),
    Source("wesnoth", "wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music/*.ogg"),
    Source("xmoto", "xmoto-data", "usr/share/games/xmoto/Textures/Musics/*.ogg"),
)


def fetch(sources=SOURCES) -> Path:
    """Download and unpack every package once; returns the folder with one sub-folder per package."""
    debs, root = HOME / "debs", HOME / "root"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [s.package for s in sources if not list(debs.glob(f"{s.package}_*.deb"))]
    if missing:
        if not shutil.which("apt-get"):
            raise SystemExit("the real-music benchmark needs apt-get (Debian or Ubuntu) to fetch its packages")
        log(f"apt-get download {' '.join(missing)}")
        done = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(
                f"apt-get download failed:\n{done.stderr.strip()[-2000:]}\n"
                "On a fresh machine the package lists may be empty: run 'apt-get update' (as root) first."
            )
    for s in sources:
        target = root / s.package
        if not (target / ".unpacked").exists():
            deb = sorted(debs.glob(f"{s.package}_*.deb"))[-1]
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True, capture_output=True, timeout=600)
            (target / ".unpacked").write_text(deb.name)
    return root


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def pieces(source: Source, root: Path) -> list[tuple[str, list]]:
    """``(piece name, readable things)`` of one class: a path per stem, or bytes from an archive."""
    base = root / source.package
    if source.archive:
        with zipfile.ZipFile(base / source.archive) as z:
            names = sorted(n for n in z.namelist() if Path(n).match(source.pattern))
            return [(_slug(Path(n).stem), [io.BytesIO(z.read(n))]) for n in names]
    out = []
    for path in sorted(base.glob(source.pattern)):
        if source.stems:
            name = path.parent.name
            out.append((_slug(name), [path] + [path.parent / s for s in source.stems if (path.parent / s).exists()]))
        else:
            out.append((_slug(path.stem), [path]))
    return out


def _read(parts: list, start: float | None = None, seconds: float | None = None):
    """Stereo float32 ``(samples, channels)`` and its rate: the parts (stems) summed."""
    import numpy as np
    import soundfile as sf

    mix, rate = None, None
    for part in parts:
        if hasattr(part, "seek"):
            part.seek(0)
        with sf.SoundFile(part) as f:
            rate = f.samplerate
            if start:
                f.seek(int(start * rate))
            data = f.read(int(seconds * rate) if seconds else -1, dtype="float32", always_2d=True)
        mix = data if mix is None else mix[: len(data)] + data[: len(mix)]
    if len(parts) > 1:
        mix = mix / np.maximum(1.0, np.abs(mix).max())  # summed stems must not clip
    return mix, rate


def _duration(parts: list) -> float:
    import soundfile as sf

    durations = []
    for part in parts:
        if hasattr(part, "seek"):
            part.seek(0)
        durations.append(sf.info(part).duration)
    return min(durations)


def plan(root: Path, sources=SOURCES) -> tuple[list[dict], list[str]]:
    """Every clip to cut (class, piece, start, split) and the notes on what was left out."""
    rows, notes = [], []
    rng = random.Random(SEED)
    for source in sources:
        found = [(name, parts, _duration(parts)) for name, parts in pieces(source, root)]
        usable = [(n, p, d) for n, p, d in found if d >= CLIP_SECONDS]
        if len(usable) < MIN_TRACKS:
            notes.append(
                f"{source.name}: {len(usable)} pieces of {CLIP_SECONDS:g} s or more (needs {MIN_TRACKS}); left out"
            )
            continue
        # up to CLIPS_PER_TRACK non-overlapping clips per piece, spread over it
        starts = {}
        for name, _, dur in usable:
            n = int(dur // CLIP_SECONDS)
            k = min(n, CLIPS_PER_TRACK)
            starts[name] = [round(i * n / k) * CLIP_SECONDS for i in range(k)]
        # at most CLIPS_PER_CLASS per class, round-robin over the pieces
        chosen: dict[str, list[float]] = {n: [] for n, _, _ in usable}
        total = 0
        for i in range(CLIPS_PER_TRACK):
            for name, _, _ in usable:
                if i < len(starts[name]) and total < CLIPS_PER_CLASS:
                    chosen[name].append(starts[name][i])
                    total += 1
        # split by piece: shuffle, deal to test then valid until each has ~20 % of the clips
        order = [n for n, _, _ in usable if chosen[n]]
        rng.shuffle(order)
        split = split_pieces(order, {n: len(chosen[n]) for n in order})
        parts_by_name = {n: p for n, p, _ in usable}
        for name in order:
            for start in chosen[name]:
                rows.append(
                    {
                        "class": source.name,
                        "piece": name,
                        "start": start,
                        "split": split[name],
                        "parts": parts_by_name[name],
                    }
                )
    return rows, notes


def split_pieces(order: list[str], clips: dict[str, int], share: float = 0.2) -> dict[str, str]:
    """Deal pieces (in ``order``) to test, then valid, while each stays nearest ``share`` of the clips;
    each gets at least one piece and train keeps at least two.

    >>> split_pieces(["a", "b", "c", "d"], {"a": 10, "b": 10, "c": 10, "d": 10})
    {'a': 'test', 'b': 'valid', 'c': 'train', 'd': 'train'}
    """
    target, held, split = share * sum(clips.values()), {"test": 0, "valid": 0}, {}
    for i, name in enumerate(order):
        left = len(order) - i  # this piece and those after it
        for part in ("test", "valid"):
            others_need = sum(1 for p in ("test", "valid") if p != part and held[p] == 0)
            if left - others_need > 2 and (held[part] == 0 or held[part] + clips[name] / 2 <= target):
                split[name] = part
                held[part] += clips[name]
                break
        split.setdefault(name, "train")
    return split


def build(sources=SOURCES) -> tuple[Path, dict]:
    """Cut the clips and write ``labels.csv`` once; returns the dataset root and its description."""
    import json

    import soundfile as sf

    dataset = HOME / "dataset"
    done = dataset / "dataset.json"
    if done.exists():
        return dataset, json.loads(done.read_text())
    root = fetch(sources)
    rows, notes = plan(root, sources)
    shutil.rmtree(dataset, ignore_errors=True)
    log(f"cutting {len(rows)} clips of {CLIP_SECONDS:g} s into {dataset}")
    labels = []
    for row in rows:
        rel = f"{row['class']}/{row['piece']}-{int(row['start']):04d}.flac"
        target = dataset / "audio" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data, rate = _read(row["parts"], row["start"], CLIP_SECONDS)
        sf.write(str(target), data, rate, format="FLAC", subtype="PCM_16")
        labels.append(
            {"path": rel, "genre": row["class"], "artist": f"{row['class']}/{row['piece']}", "split": row["split"]}
        )
    with open(dataset / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "genre", "artist", "split"])
        writer.writeheader()
        writer.writerows(labels)
    counts: dict[str, dict[str, int]] = {}
    for row in labels:
        counts.setdefault(row["genre"], {"train": 0, "valid": 0, "test": 0})[row["split"]] += 1
    pieces_per = {}
    for row in rows:
        pieces_per.setdefault(row["class"], {}).setdefault(row["split"], set()).add(row["piece"])
    info = {
        "clips": len(labels),
        "classes": len(counts),
        "clip_seconds": CLIP_SECONDS,
        "clips_per_track": CLIPS_PER_TRACK,
        "clips_per_class": CLIPS_PER_CLASS,
        "min_tracks": MIN_TRACKS,
        "seed": SEED,
        "notes": notes,
        "per_class": {
            c: {
                "clips": counts[c],
                "pieces": {s: len(v) for s, v in pieces_per[c].items()},
                "package": next(s.package for s in sources if s.name == c),
            }
            for c in sorted(counts)
        },
    }
    done.write_text(json.dumps(info, indent=2))
    return dataset, info


def store(dataset: Path) -> Path:
    """Mel features of the dataset (``mrnet-extract folder ... --features mel``) into ``HOME/realmusic.zarr``."""
    out = HOME / "realmusic.zarr"
    if not (out / "manifest" / "tracks.parquet").exists():
        log(f"extracting Mel features into {out}")
        subprocess.run(
            [
                "mrnet-extract",
                "folder",
                "--root",
                str(dataset / "audio"),
                "--labels",
                str(dataset / "labels.csv"),
                "--features",
                "mel",
                "--out",
                str(out),
                "--manifests-dir",
                str(HOME / "manifests"),
            ],
            check=True,
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realmusic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-only", action="store_true", help="build the dataset and the store, run nothing")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    parser.add_argument("--only", action="append", help="run only these configurations (repeatable)")
    parser.add_argument("--render", action="store_true", help="only rewrite docs/results.md from the saved results")
    args = parser.parse_args(argv)
    from benchmarks import realmusic_page, realmusic_runs

    if args.render:
        realmusic_page.render()
        return
    dataset, info = build()
    location = store(dataset)
    log(f"{info['clips']} clips, {info['classes']} classes; store {location}")
    if not args.build_only:
        realmusic_runs.run_all(location, info, seeds=args.seeds, only=args.only)
        realmusic_page.render()


if __name__ == "__main__":
    main()
