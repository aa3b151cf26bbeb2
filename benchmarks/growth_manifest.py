"""What a run does with a manifest alone, timed on manifests of up to a million tracks (no features).

``manifest(n)`` builds an FMA-like tracks manifest (the declared ``TRACKS`` schema, done, 16 genres
drawn with a skew like FMA's, 5 tracks per artist, an 80/10/10 split, a few tags per track) in
memory; ``operation(name, n)``, one child process per call, builds it and then times one of
:data:`OPERATIONS`, the functions the tools call on a whole manifest:

- ``folds``: the stratified k-fold grouped by artist a folder dataset gets (``assign_folds``, k = 10);
  ``folds-singles`` the same without artists (every track its own group).
- ``split``: ``split_tracks`` on the official split; ``split-fold``: fold 0 of a 10-fold manifest.
- ``genre-table``: ``genre_table`` and ``with_labels`` (the label table a store keeps);
  ``tag-table``: a multi-label store's (``tag_table``); ``class-weights``: the loss weights of the
  training split; ``validate``: the schema check every read makes; ``status-counts``.
- ``statistics``: the training part of the feature statistics (``statistics.training_part``, what
  ``--normalize stored`` adds up) and finalize's check of the units' sums against the manifest
  (``statistics.combine_units``, over one unit file naming every track).

Each child runs Polars on one thread (``growth.MANIFEST_ENV``): the work, not the waits of a
thread pool on a shared machine. Time is the best of up to five runs while they add up to under 5 s (a fresh million-row frame
costs page faults that vary several-fold from one run to the next).
Memory is the operation's own: the child's peak resident size less its size once the manifest was built.
"""

from __future__ import annotations

import time

GENRES = 16
REPEATS = 5  # an operation is timed up to this many times while they add up to under BUDGET seconds, the best kept
BUDGET = 5.0
OPERATIONS = (
    "folds",
    "folds-singles",
    "split",
    "split-fold",
    "genre-table",
    "tag-table",
    "class-weights",
    "validate",
    "status-counts",
    "statistics",
)


def manifest(n: int, *, seed: int = 0):
    """An extracted FMA-like manifest of ``n`` tracks, as a store holds it (``TRACKS`` schema)."""
    import numpy as np
    import polars as pl

    from mrnet.manifests.schema import TRACKS, genre_table, validate, with_labels

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, GENRES + 1)
    genre = rng.choice(GENRES, size=n, p=weights / weights.sum())
    ids = np.char.zfill(np.arange(n).astype(str), 7)
    split = np.array(["train"] * 8 + ["valid", "test"])[np.arange(n) % 10]
    names = np.array([f"genre{g:02d}" for g in range(GENRES)])
    tracks = pl.DataFrame(
        {
            "track_id": ids,
            "key": ids,
            "path": np.char.add(np.char.add("audio/", ids), ".mp3"),
            "genre": names[genre],
            "label": None,
            "genres_all": None,
            "tags": None,
            "artist": (np.arange(n) // 5).astype(str),
            "split": split,
            "fold": None,
            "duration": 30.0,
            "sample_rate": 44100,
            "channels": 2,
            "frames": rng.integers(1800, 1900, size=n),
            "checksum": "crc32:00000000",
            "status": "done",
            "error": None,
            "warning": None,
        }
    ).with_columns(genres_all=pl.concat_list(pl.col("genre")), tags=pl.concat_list(pl.col("genre"), pl.lit("loud")))
    tracks = tracks.select([pl.col(c).cast(t) for c, t in TRACKS.items()])
    return validate(with_labels(tracks, genre_table(tracks)), TRACKS, name="tracks")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    """Start ``VmHWM`` again from the current size (Linux: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def operation(name: str, n: int) -> dict:
    """Build an ``n``-track manifest, then time operation ``name`` on it (see the module's list)."""
    import polars as pl

    from mrnet.extract.datasets.folds import assign_folds
    from mrnet.manifests.schema import (
        TRACKS,
        class_weights,
        genre_table,
        status_counts,
        tag_table,
        validate,
        with_labels,
    )
    from mrnet.store import statistics
    from mrnet.train.splits import split_tracks

    tracks = manifest(n)
    if name == "split-fold":
        tracks = assign_folds(tracks, k=10, seed=0)
    if name == "statistics":  # a store whose one unit journaled every track, with its sums
        import tempfile

        import numpy as np

        from mrnet.store.location import Location

        groups = {
            statistics.group_key(s, None, True): statistics.Sums(
                int(tracks.filter(pl.col("split") == s)["frames"].sum()), np.zeros((1, 1, 48)), np.zeros((1, 1, 48))
            )
            for s in ("train", "valid", "test")
        }
        location = Location.parse(tempfile.mkdtemp(prefix="mrnet-growth-"))
        location.write_bytes("progress/0000.parquet", b"")
        location.write_bytes(
            statistics.unit_file("0000"),
            statistics._npz(
                groups,
                {
                    "track_ids": tracks["track_id"].to_numpy().astype(str),
                    "track_groups": np.array(statistics.group_keys(tracks).to_list()),
                },
            ),
        )
    before = _rss_mb()
    _reset_peak()

    def once() -> int:
        if name == "folds":
            return assign_folds(tracks, k=10, seed=0)["fold"].n_unique()
        if name == "folds-singles":
            return assign_folds(tracks.with_columns(artist=pl.lit(None, pl.String)), k=10, seed=0)["fold"].n_unique()
        if name == "split":
            return split_tracks(tracks).train.height
        if name == "split-fold":
            return split_tracks(tracks, fold=0).train.height
        if name == "genre-table":
            return with_labels(tracks, genre_table(tracks))["label"].n_unique()
        if name == "tag-table":
            return tag_table(tracks).height
        if name == "class-weights":
            return len(class_weights(split_tracks(tracks).train, GENRES))
        if name == "validate":
            return validate(tracks, TRACKS, name="tracks").height
        if name == "status-counts":
            return status_counts(tracks)["done"]
        if name == "statistics":
            total, _ = statistics.training_part(groups, split_tracks(tracks).train)
            combined, why = statistics.combine_units(location, tracks)
            if combined is None:
                raise RuntimeError(why)
            return total.count + sum(s.count for s in combined.values())
        raise ValueError(f"unknown manifest operation {name!r}; choose from {', '.join(OPERATIONS)}")

    times, cpu = [], []
    while len(times) < REPEATS and sum(times) < BUDGET:  # best of a few: one run on a shared machine is mostly noise
        began, used = time.perf_counter(), time.process_time()
        out = once()
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - used)
    return {
        "seconds": min(times),
        "cpu_s": min(cpu),
        "repeats": len(times),
        "result": int(out),
        "manifest_mb": before,
        "op_peak_mb": max(0.0, _peak_mb() - before),
    }
