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
import stat
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from mrnet.core.errors import UserError
from mrnet.manifests.schema import TRACKS, extra_columns, genre_table, tag_table, validate, with_labels
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


def walk_files(root: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """Every non-hidden regular file below ``root`` once, as sorted POSIX paths relative to ``root``,
    notes, and the real path of each file reached through a link out of ``root``.

    The user's symbolic links are followed wherever they lead (a folder of links per genre into a
    shared audio folder is a common layout). The real tree is listed first and links after it, so a
    file is listed under its real path wherever a link to it sits; a folder is entered once however
    many links lead to it (a link back to a parent, ``rock/up -> ..``, would otherwise repeat the tree
    forever and list each file under several genres); a file reached by several paths is listed once;
    broken or self-referencing links are skipped. Only regular files are listed: a FIFO named
    ``x.wav`` would hang the first read. A folder that cannot be listed is skipped. Each case is named
    in a note.
    """
    real_root = root.resolve()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    found: list[str] = []
    resolved: dict[str, str] = {}
    skipped: dict[str, list[str]] = {kind: [] for kind in _WALK_NOTES}
    folders: list[tuple[Path, str]] = [(root, "")]
    links: list[tuple[Path, str]] = []  # links (to folders or files) wait until the real tree is listed
    while folders or links:
        if not folders:
            links.sort(
                key=lambda link: link[1], reverse=True
            )  # in path order: the first path of a file is its listed one
            path, rel = links.pop()
            mode = path.stat().st_mode
            if stat.S_ISDIR(mode):
                folders.append((path, rel))
            elif not stat.S_ISREG(mode):
                skipped["special"].append(rel)
            elif _add_file(path, rel, seen_files, found, skipped) and not path.resolve().is_relative_to(real_root):
                resolved[rel] = path.resolve().as_posix()
            continue
        folder, rel = folders.pop()
        try:
            key = os.stat(folder)
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name, reverse=True)
        except OSError as err:  # no permission, or an I/O error: noted, the rest of the tree is read
            skipped["unreadable"].append(f"{rel or '.'} ({err.strerror or err})")
            continue
        if (key.st_dev, key.st_ino) in seen_dirs:
            skipped["loop"].append(rel)
            continue
        seen_dirs.add((key.st_dev, key.st_ino))
        for entry in entries:
            if entry.name.startswith("."):
                continue
            entry_rel = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                try:
                    Path(entry.path).resolve(strict=True)
                except (OSError, RuntimeError):  # broken, or a loop of links (ELOOP)
                    skipped["broken"].append(entry_rel)
                else:
                    links.append((Path(entry.path), entry_rel))
            elif entry.is_dir(follow_symlinks=False):
                folders.append((Path(entry.path), entry_rel))
            elif entry.is_file(follow_symlinks=False):
                _add_file(Path(entry.path), entry_rel, seen_files, found, skipped)
            else:
                skipped["special"].append(entry_rel)
    return sorted(found), _walk_notes(skipped), resolved


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a loop of links (ELOOP)
        return False


def _add_file(path: Path, rel: str, seen: set[str], found: list[str], skipped: dict[str, list[str]]) -> bool:
    real = os.path.realpath(path)
    if real in seen:
        skipped["again"].append(rel)
        return False
    seen.add(real)
    found.append(rel)
    return True


_WALK_NOTES = {
    "loop": "links to folders already scanned (a loop, or a second way in) are not followed",
    "broken": "broken or self-referencing links are skipped",
    "again": "files reached by more than one path are listed once, under their first path",
    "special": "entries are not regular files (a FIFO, socket or device) and are skipped",
    "unreadable": "folders cannot be read and are skipped (check their permissions)",
}


def _walk_notes(skipped: dict[str, list[str]]) -> list[str]:
    return [
        f"{len(paths)} {_WALK_NOTES[kind]}: {', '.join(sorted(paths)[:5])}{' ...' if len(paths) > 5 else ''}"
        for kind, paths in skipped.items()
        if paths
    ]


def existing(root: Path, paths: pl.Series) -> tuple[pl.Series, dict[str, str]]:
    """Whether each path (relative to ``root``, or absolute) is a regular file, listing each parent
    folder once instead of one stat per file; and why each other path is not: its folder cannot be
    listed, or it is there but not a regular file (a FIFO named ``x.wav`` would hang the first read).

    Listing is what keeps a 649k-file Melon scan to seconds: about 700 ``scandir`` calls, no per-file
    system calls.
    """
    found: list[str] = []
    why: dict[str, str] = {}  # a path, or a folder (ending in /) -> why its files are not readable
    for parent in paths.str.extract(r"^(.*)/[^/]*$", 1).fill_null(".").unique().drop_nulls().to_list():
        prefix = "" if parent == "." else parent + "/"
        try:
            with os.scandir(root / parent) as listing:
                for entry in listing:  # is_file follows links; a FIFO, device or folder is not a file
                    (
                        found.append(prefix + entry.name)
                        if _is_file(entry)
                        else why.setdefault(prefix + entry.name, "not a regular file (a FIFO, device or folder)")
                    )
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            why[parent + "/"] = f"cannot read its folder {(root / parent).as_posix()} ({err.strerror or err})"
    return paths.is_in(pl.Series(found, dtype=pl.String).implode()).fill_null(False), why


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
    ``genres_all`` defaults to ``[genre]`` and ``artist``/``split``/``fold``/``tags`` to null. The dataset's
    own ``meta_`` columns (``schema.EXTRA_PREFIX``) are kept after the declared ones.
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
    return validate(filled.select(*TRACKS.names(), *extra_columns(filled)), TRACKS, name="tracks")


def mark_missing(tracks: pl.DataFrame, root: Path) -> pl.DataFrame:
    """Mark tracks whose file is not on disk (or not a regular file, or in a folder that cannot be read)
    ``failed``, with an error naming the path."""
    present, why = existing(root, tracks["path"])
    missing = pl.lit(present.not_())
    parent = pl.col("path").str.extract(r"^(.*)/[^/]*$", 1).fill_null(".") + "/"
    folders = {k: v for k, v in why.items() if k.endswith("/")}
    files = {k: v for k, v in why.items() if not k.endswith("/")}
    error = pl.coalesce(  # a null reason makes its line null: the first reason that applies wins
        pl.col("path").replace_strict(files, default=None, return_dtype=pl.String) + ": " + pl.col("path"),
        parent.replace_strict(folders, default=None, return_dtype=pl.String) + ": " + pl.col("path"),
        pl.lit(f"file not found: {root.as_posix()}/") + pl.col("path"),
    )
    return tracks.with_columns(
        status=pl.when(missing).then(pl.lit("failed")).otherwise(pl.col("status")),
        error=pl.when(missing).then(error).otherwise(pl.col("error")),
    )


def make_scan(
    name: str,
    root: Path,
    *,
    source: str,
    labeling: str,
    tracks: pl.DataFrame,
    notes: list[str] | tuple[str, ...] = (),
    task: str = "single-label",
    tags: list[str] | None = None,
) -> Scan:
    """A validated :class:`Scan`: the label table (genres, or ``tags`` for a multi-label task: every tag
    a track has by default) and each single-label track's label id."""
    refuse_duplicates(name, tracks)
    if task == "multi-label":
        genres = tag_table(tracks, tags)
    else:
        genres = genre_table(tracks)
        tracks = with_labels(tracks, genres)
    tracks = validate(tracks, TRACKS, name=f"{name} tracks")
    return Scan(
        name=name,
        root=root,
        source=source,
        labeling=labeling,
        tracks=tracks,
        genres=genres,
        notes=tuple(notes),
        task=task,
    )


def refuse_duplicates(name: str, tracks: pl.DataFrame) -> None:
    """UserError naming both entries when two rows share a track id, a store key or a path: they would
    train as one track twice (or one file under two labels).

    >>> frame = pl.DataFrame({"track_id": ["rock/dup", "rock/dup"], "path": ["rock/dup.flac", "rock/dup.wav"]})
    >>> refuse_duplicates("folder", frame.with_columns(key=pl.col("track_id")))
    Traceback (most recent call last):
    mrnet.core.errors.UserError: folder: 1 track id is given to more than one entry, e.g. 'rock/dup': rock/dup.flac and rock/dup.wav; each track must be listed once: remove or rename one of them
    """
    for column, what in (("track_id", "track id"), ("key", "store key"), ("path", "path")):
        dup = tracks.filter(pl.col(column).is_duplicated()).sort(column, "path", "track_id")
        if not dup.height:
            continue
        both = dup.filter(pl.col(column) == dup[column][0]).head(2)
        if column == "path":
            entries = f"as track {both['track_id'][0]!r} and as track {both['track_id'][1]!r}"
        elif both["path"][0] == both["path"][1]:
            entries = f"{both['path'][0]} both times"
        else:
            entries = f"{both['path'][0]} and {both['path'][1]}"
        count = dup[column].n_unique()
        raise UserError(
            f"{name}: {count} {what}{'s are' if count > 1 else ' is'} given to more than one entry, e.g. {dup[column][0]!r}: "
            f"{entries}; each track must be listed once: remove or rename one of them"
        )


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
