"""Splits and folds: seeded stratified k-fold grouped by artist, and split or fold lists a user brings.

**k-fold.** :func:`stratified_group_folds` deals whole groups (artists) to folds so that one artist
never sits in two folds (a model must not meet, in test, an artist it trained on), while keeping
every fold's genre mix close to the whole. Groups go largest first (ties in a seeded random order);
each goes to the fold where it adds least to the sum of squared per-genre fill ratios
(``count[fold, genre] / total[genre]``), ties to the smaller fold, then to a seeded fold order.
Single-track groups, which is every track when there are no artists, are then dealt genre by genre
to the least filled folds, which makes per-genre counts differ by at most one between folds.

**Lists.** :func:`apply_split_files` and :func:`apply_fold_files` take text files with one track per
line (a path relative to the dataset root, a file name, or a track id) and replace the reader's own
split or folds; tracks that no list names are dropped.

>>> stratified_group_folds(["a", "a", "b", "b"], k=2, seed=0).tolist()
[0, 1, 0, 1]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import polars as pl

from mrnet.core.errors import UserError

from .base import is_audio

#: File names a ``--split-files`` folder must hold, one per split.
SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}


def _codes(values: Sequence | pl.Series | np.ndarray) -> np.ndarray:
    """Dense integer codes for values (null is a value of its own)."""
    ranks = pl.Series(values).cast(pl.String).fill_null("\x00").rank("dense").cast(pl.Int64)
    return ranks.to_numpy() - 1


def stratified_group_folds(
    labels: Sequence | pl.Series | np.ndarray,
    groups: Sequence | pl.Series | np.ndarray | None = None,
    *,
    k: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Fold index (int16, 0..k-1) for each item: stratified by ``labels``, no group in two folds, seeded.

    ``groups`` (e.g. artist ids) may hold nulls: an item with a null group is a group of its own.

    >>> folds = stratified_group_folds(["x"] * 6 + ["y"] * 3, ["a", "a", "b", "c", "d", "e", "f", "g", "h"], k=3, seed=1)
    >>> bool(folds[0] == folds[1]), np.bincount(folds, minlength=3).tolist()
    (True, [3, 3, 3])
    """
    if k < 2:
        raise UserError(f"--folds {k}: k-fold cross-validation needs at least 2 folds")
    y = _codes(labels)
    n = y.size
    if groups is None:
        g = np.arange(n)
    else:
        gs = pl.Series(groups)
        if gs.len() != n:
            raise ValueError(f"{n} labels but {gs.len()} groups")
        g = _codes(gs)
        nulls = gs.is_null().to_numpy()
        g[nulls] = g.max(initial=-1) + 1 + np.arange(nulls.sum())
    rng = np.random.default_rng(seed)
    totals = np.bincount(y).astype(np.float64)
    counts = np.zeros((k, totals.size))
    priority = rng.permutation(k)
    folds = np.full(n, -1, dtype=np.int16)
    sizes = np.bincount(g) if n else np.zeros(0, np.int64)
    in_multi = sizes[g] > 1
    _deal_groups(np.flatnonzero(in_multi), y, g, sizes, counts, totals, priority, folds, rng)
    _deal_singles(np.flatnonzero(~in_multi), y, counts, priority, folds, rng)
    return folds


def _deal_groups(rows, y, g, sizes, counts, totals, priority, folds, rng) -> None:
    """Greedy: groups of two or more items, largest first, each to the fold it unbalances least."""
    if rows.size == 0:
        return
    # one (group, class, count) triple per group and class it holds, grouped by group
    pair, pair_count = np.unique(g[rows].astype(np.int64) * totals.size + y[rows], return_counts=True)
    pair_group, pair_class = np.divmod(pair, totals.size)
    groups, starts = np.unique(pair_group, return_index=True)
    ends = np.append(starts[1:], pair.size)
    order = rng.permutation(groups.size)
    order = order[np.argsort(-sizes[groups[order]], kind="stable")]
    fill = counts / totals  # (k, classes) fill ratios, kept in step with counts
    size = counts.sum(axis=1)
    rank = np.argsort(priority)  # folds in seeded tie-break order
    fold_of_group = np.full(sizes.size, -1, dtype=np.int16)
    for i in order:
        cls, cnt = pair_class[starts[i] : ends[i]], pair_count[starts[i] : ends[i]]
        weight = cnt / totals[cls]
        cost = fill[:, cls] @ weight  # growth of the sum of squared fill ratios, up to a constant
        # smallest cost, then smallest fold, then seeded order (lexsort: last key first)
        best = rank[np.lexsort((size[rank], cost[rank].round(12)))[0]]
        counts[best, cls] += cnt
        fill[best, cls] += weight
        size[best] += cnt.sum()
        fold_of_group[groups[i]] = best
    folds[rows] = fold_of_group[g[rows]]


def _deal_singles(rows, y, counts, priority, folds, rng) -> None:
    """Water-filling: each class's single items fill its least filled folds, ties to the smaller fold."""
    rows = rows[rng.permutation(rows.size)]
    k = counts.shape[0]
    for c in np.unique(y[rows]):
        mine = rows[y[rows] == c]
        level = counts[:, c].astype(np.int64)
        slots = level.max() - level + -(-mine.size // k) + 1  # enough slots per fold to hold them all
        fold_of_slot = np.repeat(np.arange(k), slots)
        value = level[fold_of_slot] + (np.arange(slots.sum()) - np.repeat(np.cumsum(slots) - slots, slots))
        size = counts.sum(axis=1)[fold_of_slot]
        chosen = fold_of_slot[np.lexsort((priority[fold_of_slot], size, value))[: mine.size]]
        folds[mine] = chosen
        counts[:, c] += np.bincount(chosen, minlength=k)


def assign_folds(tracks: pl.DataFrame, *, k: int, seed: int, group: str | None = "artist") -> pl.DataFrame:
    """``tracks`` with a stratified ``fold`` over ``genre``, grouped by the ``group`` column, and no ``split``."""
    groups = tracks[group] if group and tracks[group].null_count() < tracks.height else None
    folds = stratified_group_folds(tracks["genre"], groups, k=k, seed=seed)
    return tracks.with_columns(fold=pl.Series(folds, dtype=pl.Int16), split=pl.lit(None, pl.String))


def read_list(path: Path) -> list[tuple[int, str]]:
    """(line number, entry) of a list file: one entry per line; blank lines and ``#`` comments skipped;
    ``\\`` read as ``/`` and a leading ``./`` dropped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"list file {path} does not exist: pass text files with one relative path per line") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read list file {path}: {err}") from err
    lines = ((n, line.strip().replace("\\", "/")) for n, line in enumerate(text.splitlines(), 1))
    return [(n, line.removeprefix("./")) for n, line in lines if line and not line.startswith("#")]


def _strip_ext(name: str) -> str:
    """``name`` without its extension when that is an audio or ``.npy`` extension."""
    return name.rsplit(".", 1)[0] if is_audio(name) or name.lower().endswith(".npy") else name


class _Matcher:
    """Finds the track a list entry means: its relative path, track id, file name or file stem."""

    def __init__(self, tracks: pl.DataFrame):
        self.exact: dict[str, int] = {}
        self.loose: dict[str, set[int]] = defaultdict(set)
        for i, (tid, path) in enumerate(tracks.select("track_id", "path").iter_rows()):
            self.exact.setdefault(path, i)
            self.exact.setdefault(tid, i)
            name = PurePosixPath(path).name
            self.loose[name].add(i)
            self.loose[_strip_ext(name)].add(i)

    def find(self, entry: str, where: str) -> int | None:
        for key in (entry, _strip_ext(entry)):
            if key in self.exact:
                return self.exact[key]
        name = PurePosixPath(entry).name
        for key in (name, _strip_ext(name)):
            hits = self.loose.get(key, set())
            if len(hits) > 1:
                raise UserError(
                    f"{where}: {entry!r} matches {len(hits)} tracks by file name; write its path relative to the dataset root"
                )
            if hits:
                return next(iter(hits))
        return None


def _apply(tracks: pl.DataFrame, lists: list[tuple[Path, str | int]], column: str) -> tuple[pl.DataFrame, list[str]]:
    """Set ``column`` (split or fold) from list files; drop tracks no list names; return notes."""
    matcher = _Matcher(tracks)
    value: dict[int, tuple[str | int, Path]] = {}
    notes = []
    for path, assigned in lists:
        entries = read_list(path)
        unmatched = []
        for line_no, entry in entries:
            i = matcher.find(entry, f"{path}:{line_no}")
            if i is None:
                unmatched.append(entry)
            elif value.setdefault(i, (assigned, path))[0] != assigned:
                raise UserError(
                    f"{path}:{line_no}: {entry!r} is also listed in {value[i][1]}; a track can be in one list only"
                )
        if not entries:
            notes.append(f"{path.name} lists no tracks")
        elif len(unmatched) == len(entries):
            raise UserError(
                f"{path}: none of its {len(entries)} lines names a track of this dataset (first: {entries[0][1]!r}); "
                "lines must be paths relative to the dataset root, file names or track ids"
            )
        if unmatched:
            notes.append(f"{path.name}: {len(unmatched)} lines match no track, e.g. {unmatched[:3]}")
    dropped = tracks.height - len(value)
    if dropped:
        notes.append(f"{dropped} tracks are in none of the list files and are left out")
    rows = sorted(value)
    dtype = pl.String if column == "split" else pl.Int16
    other = "fold" if column == "split" else "split"
    picked = tracks[rows].with_columns(
        pl.Series(column, [value[i][0] for i in rows], dtype=dtype), pl.lit(None, tracks.schema[other]).alias(other)
    )
    return picked, notes


def apply_split_files(tracks: pl.DataFrame, folder: Path) -> tuple[pl.DataFrame, list[str]]:
    """Split from ``folder/{train,valid,test}.txt``; returns the kept tracks and notes for the user."""
    if not folder.is_dir():
        raise UserError(f"--split-files {folder}: expected a folder holding train.txt, valid.txt and test.txt")
    absent = [name for name in SPLIT_FILES.values() if not (folder / name).is_file()]
    if absent:
        raise UserError(
            f"--split-files {folder}: missing {', '.join(absent)}; the folder must hold train.txt, valid.txt and test.txt "
            "(rename e.g. train_filtered.txt to train.txt)"
        )
    return _apply(tracks, [(folder / name, split) for split, name in SPLIT_FILES.items()], "split")


def apply_fold_files(tracks: pl.DataFrame, files: list[Path]) -> tuple[pl.DataFrame, list[str]]:
    """Folds from list files: file i lists fold i; returns the kept tracks and notes for the user."""
    if len(files) < 2:
        raise UserError(f"--fold-files: got {len(files)} file(s); give one list file per fold, at least 2")
    return _apply(tracks, [(path, i) for i, path in enumerate(files)], "fold")


#: Fewer tracks of a class than this in a fold (or a valid/test split) earns a warning at extraction.
FEW_PER_PART = 2


def thin_classes(tracks: pl.DataFrame, *, few: int = FEW_PER_PART) -> list[str]:
    """A note when some genre has fewer than ``few`` usable tracks in a fold (or in valid or test): a test
    fold without a class cannot score it, and one with a single track swings by whole percents on it.

    >>> t = pl.DataFrame({"genre": ["a"] * 4 + ["b"] * 3, "fold": [0, 1, 2, 0, 1, 2, 0], "split": [None] * 7,
    ...                   "status": ["pending"] * 7})
    >>> thin_classes(t)
    ['few tracks per class and fold: a 4 over 3 folds (the fewest hold 1), b 3 over 3 folds (the fewest hold 1); ...']
    """
    usable = tracks.filter((pl.col("status") != "failed") & pl.col("genre").is_not_null())
    if usable.is_empty():
        return []
    by_fold = usable["fold"].is_not_null().any()
    part = "fold" if by_fold else "split"
    parts = sorted(usable[part].drop_nulls().unique().to_list()) if by_fold else ["valid", "test"]
    counts = usable.group_by("genre", part).len()
    thin = []
    for genre in sorted(usable["genre"].unique().to_list()):
        mine = dict(counts.filter(pl.col("genre") == genre).select(part, "len").iter_rows())
        per = [mine.get(p, 0) for p in parts]
        if min(per) < few:
            total = usable.filter(pl.col("genre") == genre).height
            empty = sum(1 for n in per if n == 0)
            if by_fold:
                thin.append(
                    f"{genre} {total} over {len(parts)} folds ({f'{empty} hold none of it' if empty else f'the fewest hold {min(per)}'})"
                )
            else:
                thin.append(f"{genre} {', '.join(f'{n} in {p}' for p, n in zip(parts, per))}")
    if not thin:
        return []
    where = "fold" if by_fold else "valid/test split"
    shown = ", ".join(thin[:8]) + (f" and {len(thin) - 8} more" if len(thin) > 8 else "")
    fix = (
        "fewer --folds, or more tracks of those classes"
        if by_fold
        else "more tracks of those classes in valid and test"
    )
    return [
        f"few tracks per class and {where}: {shown}; a class missing from a test {'fold' if by_fold else 'split'} "
        f"cannot be scored there and one track swings the accuracy. Use {fix}."
    ]
