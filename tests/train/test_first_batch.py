"""What training reads before its first batch does not grow with the store.

A 100,000-track store must reach its first batch in under a minute (issue 24; docs/performance.md:
the time is imports and the model, the store's part under a second). What would break that is work
per track before training starts: opening every track's array, reading each shard for statistics or
lengths, building an index of every shard. This counts, by Python's audit hook, the files opened
under the store from the start of ``train`` to its first finished batch, on stores of 36 and 180
tracks: the tracks opened are those the first batches read (bounded by the batch size and the
loader's read-ahead), and everything else the same count at both sizes.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from mrnet.store.synthetic import synthetic_store
from mrnet.train.loop import Interrupted, train
from tests.train.conftest import small_config

BATCH = 4


class _Opens:
    """Files opened under ``root`` while active, by what they are: a track (its key) or a store file."""

    active: list[_Opens] = []
    hooked = False

    def __init__(self, root: Path):
        self.root, self.tracks, self.other = str(root) + "/", set(), Counter()

    def __enter__(self) -> _Opens:
        if not _Opens.hooked:  # an audit hook cannot be removed: one for the session, counting into what is active
            sys.addaudithook(_Opens._hook)
            _Opens.hooked = True
        _Opens.active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _Opens.active.remove(self)

    @staticmethod
    def _hook(event: str, args: tuple) -> None:
        if event != "open" or not _Opens.active or not isinstance(args[0], str):
            return
        for watch in _Opens.active:
            if args[0].startswith(watch.root):
                rel = args[0][len(watch.root) :]
                if rel.startswith("features/") and rel.count("/") >= 2:
                    watch.tracks.add(rel.split("/")[1])
                else:
                    watch.other[rel] += 1


def _to_first_batch(store: Path, run: Path) -> _Opens:
    cfg = small_config(store, run, epochs=1, batch_size=BATCH, crop_seconds=0.5)
    with _Opens(store) as opens:
        try:
            train(cfg, should_stop=lambda epoch, step: step >= 1)
        except Interrupted:
            pass
    return opens


def test_training_opens_the_tracks_its_first_batches_read_and_no_more(tmp_path):
    small, large = (
        synthetic_store(tmp_path / f"{n}.zarr", per_genre=n, frames=(60, 90)) for n in (12, 60)
    )  # 36 and 180 tracks: 24 and 120 for training
    a, b = _to_first_batch(Path(small), tmp_path / "run-small"), _to_first_batch(Path(large), tmp_path / "run-large")
    # the first batch and the loader's read-ahead: a few batches of tracks, fewer than the small store has
    assert 0 < len(a.tracks) <= 4 * BATCH < 24, a.tracks
    assert 0 < len(b.tracks) <= 4 * BATCH, b.tracks
    # the manifest, statistics and metadata: read the same number of times whatever the store's size
    assert b.other == a.other, (a.other, b.other)


def test_mrnet_train_starts_without_the_libraries_it_needs_only_to_score_and_draw():
    """``mrnet-train`` imports its command and the training loop without scikit-learn's metrics, SciPy's statistics
    or Matplotlib (a third of its import time, which every start paid); they load when a run is scored and drawn."""
    import subprocess

    code = (
        "import sys, mrnet.train.cli, mrnet.train.loop, mrnet.train.cli_probe\n"
        "print(sorted(m for m in ('matplotlib', 'scipy.stats', 'sklearn', 'sklearn.metrics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"loaded at start: {out.strip()}"
