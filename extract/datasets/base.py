"""What every dataset reader returns, and the small helpers they share.

A reader turns a dataset, as it ships, into a :class:`Scan`: one row per track in the declared
``TRACKS`` schema, nothing decoded yet. Readers only build the columns they know (``track_id``,
``path``, ``genre``, ``genres_all``, ``artist``, ``split``, ``fold``); :func:`tracks_frame` fills
the rest, :func:`mark_missing` flags files that are not on disk and :func:`make_scan` adds labels
and the genre table.

>>> raw = pl.DataFrame({"track_id": ["rock/a"], "path": ["rock/a.wav"], "genre": ["rock"]})
>>> s = make_scan("folder", Path("/data"), source="audio", labeling="genre", tracks=tracks_frame(raw))
>>> s.tracks.select("key", "label", "status").rows()
[('rock_a-...', 0, 'pending')]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from mrnet.manifests.schema import TRACKS, genre_table, tag_table, validate, with_labels
from mrnet.core.errors import UserError
from mrnet.store.format import track_key

log = logging.getLogger("mrnet.extract.datasets")

#: Audio file extensions the readers pick up (compared case-insensitively); libsndfile decodes them all.
AUDIO_SUFFIXES = (".mp3", ".ogg", ".flac", ".wav", ".au")

# Exactly the ids for which mrnet.store.format.track_key returns the id itself.
_SAFE_ID = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,95}$"


@dataclass(frozen=True)
class Scan:
    """A dataset as found on disk: its tracks manifest (nothing extracted yet) and genre table.

    ``notes`` are what a user should read about the scan: tracks left out and why, lines of a split
    list that matched nothing, known bad files present. They are also logged.
    """

    name: str  # e.g. "fma_small"
    root: Path  # dataset root as given (resolved)
    source: str  # "audio": each path is an audio file; else the engines.SHIPPED name of what it is ("melon": a (48, T) .npy)
    labeling: str  # "top"/"all" for FMA, "major" for Melon, "top50" for MagnaTagATune, "genre" otherwise
    tracks: pl.DataFrame  # validated against mrnet.manifests.schema.TRACKS
    genres: pl.DataFrame  # the label table (GENRES schema): genres, or tags for a multi-label task
    notes: tuple[str, ...] = ()
    task: str = "single-label"  # or "multi-label": tracks carry tags, no genre
    origin: dict | None = None  # where a dataset came from, when more than its name says it (hf: name and revision)


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else a UserError that says what was expected there."""
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise UserError(f"{path} {state}: {what}")
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a UserError that says what was expected there."""
    if not path.is_file():
        raise UserError(f"no {path.name} at {path}: {what}")
    return path


def is_audio(name: str) -> bool:
    """Whether a file name has one of :data:`AUDIO_SUFFIXES`, in any case.

    >>> is_audio("a.MP3"), is_audio("a.m4a")
    (True, False)
    """
    return name.lower().endswith(AUDIO_SUFFIXES)


def walk_files(root: Path) -> tuple[list[str], list[str]]:
    """Every non-hidden file below ``root`` once, as sorted POSIX paths relative to ``root``, and notes.

    Symbolic links are followed safely. The real tree is listed first and links after it, so a file is
    listed under its real path wherever a link to it sits; a folder is entered once however many links
    lead to it (a link back to a parent, ``rock/up -> ..``, would otherwise repeat the tree forever and
    list each file under several genres); a file reached by several paths is listed once; links that
    lead out of ``root`` are not followed; broken or self-referencing links are skipped. Each case is
    named in a note.
    """
    real_root = root.resolve()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    found: list[str] = []
    skipped: dict[str, list[str]] = {"loop": [], "outside": [], "broken": [], "again": []}
    folders, links = [(root, "")], []  # links (to folders or files) wait until the real tree is listed
    while folders or links:
        if not folders:
            path, rel = links.pop(0)
            if path.is_dir():
                folders.append((path, rel))
            else:
                _add_file(path, rel, seen_files, found, skipped)
            continue
        folder, rel = folders.pop()
        key = os.stat(folder)
        if (key.st_dev, key.st_ino) in seen_dirs:
            skipped["loop"].append(rel)
            continue
        seen_dirs.add((key.st_dev, key.st_ino))
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name, reverse=True):
                if entry.name.startswith("."):
                    continue
                path = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    try:
                        target = Path(entry.path).resolve(strict=True)
                    except (OSError, RuntimeError):  # broken, or a loop of links (ELOOP)
                        skipped["broken"].append(path)
                    else:
                        (skipped["outside"].append(path) if not target.is_relative_to(real_root)
                         else links.append((Path(entry.path), path)))
                elif entry.is_dir():
                    folders.append((Path(entry.path), path))
                else:
                    _add_file(Path(entry.path), path, seen_files, found, skipped)
    return sorted(found), _walk_notes(skipped)


def _add_file(path: Path, rel: str, seen: set[str], found: list[str], skipped: dict[str, list[str]]) -> None:
    real = os.path.realpath(path)
    if real in seen:
        skipped["again"].append(rel)
    else:
        seen.add(real)
        found.append(rel)


def _walk_notes(skipped: dict[str, list[str]]) -> list[str]:
    what = {
        "loop": "links to folders already scanned (a loop, or a second way in) are not followed",
        "outside": "links that lead out of the dataset root are not followed",
        "broken": "broken or self-referencing links are skipped",
        "again": "files reached by more than one path are listed once, under their first path",
    }
    return [f"{len(paths)} {what[kind]}: {', '.join(sorted(paths)[:5])}{' ...' if len(paths) > 5 else ''}"
            for kind, paths in skipped.items() if paths]


def existing(root: Path, paths: pl.Series) -> pl.Series:
    """Whether each relative path exists, listing each parent folder once instead of one stat per file.

    Listing is what keeps a 649k-file Melon scan to seconds: about 700 ``listdir`` calls, no per-file
    system calls.
    """
    found: list[str] = []
    for parent in paths.str.extract(r"^(.*)/[^/]*$", 1).fill_null(".").unique().drop_nulls().to_list():
        try:
            names = os.listdir(root / parent)
        except (FileNotFoundError, NotADirectoryError):
            continue
        prefix = "" if parent == "." else parent + "/"
        found.extend(prefix + n for n in names)
    return paths.is_in(pl.Series(found, dtype=pl.String).implode()).fill_null(False)


def outside_root(root: Path, paths: pl.Series) -> list[str]:
    """The paths (relative, POSIX) that leave ``root``: by a ``..`` or an absolute start, or, for files
    that exist, through a symbolic link that resolves outside it.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> outside_root(root, pl.Series(["rock/a.wav", "../b.wav", "rock/../../c.wav", "/etc/passwd"]))
    ['../b.wav', 'rock/../../c.wav', '/etc/passwd']
    """
    real_root = root.resolve()
    bad = []
    for rel in paths.to_list():
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts:
            bad.append(rel)
            continue
        full = root / rel
        if full.is_symlink() or any((root / "/".join(parts[:i])).is_symlink() for i in range(1, len(parts))):
            if not full.resolve().is_relative_to(real_root):
                bad.append(rel)
    return bad


def tracks_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Complete a reader's columns into the TRACKS schema: key, nulls for extraction results, pending.

    ``frame`` needs ``track_id``, ``path`` and ``genre`` (or ``tags``, for a multi-label task);
    ``genres_all`` defaults to ``[genre]`` and ``artist``/``split``/``fold``/``tags`` to null.
    """
    if "genre" not in frame.columns:
        frame = frame.with_columns(genre=pl.lit(None, pl.String))
    defaults = {
        "genres_all": pl.concat_list(pl.col("genre")).list.drop_nulls(),
        "tags": pl.lit(None, pl.List(pl.String)),
        "artist": pl.lit(None, pl.String),
        "split": pl.lit(None, pl.String),
        "fold": pl.lit(None, pl.Int16),
    }
    frame = frame.with_columns(expr.alias(c) for c, expr in defaults.items() if c not in frame.columns)
    ids = frame["track_id"]
    safe = ids.str.contains(_SAFE_ID)  # most datasets: every id is its own key, no Python call per row
    keys = ids if safe.all() else ids.zip_with(safe, ids.map_elements(track_key, return_dtype=pl.String))
    filled = frame.with_columns(
        key=keys,
        label=pl.lit(None, pl.Int32),
        duration=pl.lit(None, pl.Float64),
        sample_rate=pl.lit(None, pl.Int32),
        channels=pl.lit(None, pl.Int16),
        frames=pl.lit(None, pl.Int64),
        checksum=pl.lit(None, pl.String),
        status=pl.lit("pending"),
        error=pl.lit(None, pl.String),
        warning=pl.lit(None, pl.String),
    )
    return validate(filled.select(TRACKS.names()), TRACKS, name="tracks")


def mark_missing(tracks: pl.DataFrame, root: Path) -> pl.DataFrame:
    """Mark tracks whose file is not on disk ``failed``, with an error naming the missing path."""
    present = existing(root, tracks["path"])
    missing = pl.lit(present.not_())
    return tracks.with_columns(
        status=pl.when(missing).then(pl.lit("failed")).otherwise(pl.col("status")),
        error=pl.when(missing).then(pl.lit(f"file not found: {root.as_posix()}/") + pl.col("path")).otherwise(pl.col("error")),
    )


def make_scan(
    name: str, root: Path, *, source: str, labeling: str, tracks: pl.DataFrame, notes: list[str] | tuple[str, ...] = (),
    task: str = "single-label", tags: list[str] | None = None,
) -> Scan:
    """A validated :class:`Scan`: the label table (genres, or ``tags`` for a multi-label task: every tag
    a track has by default) and each single-label track's label id."""
    if task == "multi-label":
        genres = tag_table(tracks, tags)
    else:
        genres = genre_table(tracks)
        tracks = with_labels(tracks, genres)
    tracks = validate(tracks, TRACKS, name=f"{name} tracks")
    return Scan(name=name, root=root, source=source, labeling=labeling, tracks=tracks, genres=genres, notes=tuple(notes), task=task)


def finish(scan: Scan) -> Scan:
    """``scan`` with a note counting files not on disk; every note logged once (the CLI prints them)."""
    failed = scan.tracks.filter(pl.col("status") == "failed")
    notes = list(scan.notes)
    if failed.height:
        notes.append(
            f"{failed.height} of {scan.tracks.height} tracks are marked failed before extraction, "
            f"e.g. {failed['error'][0]}; the run goes on without them"
        )
    for note in notes:
        log.info("%s: %s", scan.name, note)
    return replace(scan, notes=tuple(notes))
