"""The real-music benchmark's dataset plan: clips split by source piece, capped per piece and class."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from benchmarks import realmusic
from benchmarks.realmusic import Source, plan, split_pieces


def test_pieces_are_dealt_to_one_split_each_with_every_split_filled():
    rng = np.random.default_rng(0)
    for n in range(4, 30):
        clips = {f"p{i}": int(rng.integers(1, 7)) for i in range(n)}
        split = split_pieces(list(clips), clips)
        assert set(split) == set(clips)
        parts = {p: [k for k, v in split.items() if v == p] for p in ("train", "valid", "test")}
        assert len(parts["test"]) >= 1 and len(parts["valid"]) >= 1 and len(parts["train"]) >= 2


def test_the_plan_splits_by_piece_caps_clips_and_leaves_out_small_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(realmusic, "CLIPS_PER_TRACK", 2)
    monkeypatch.setattr(realmusic, "CLIPS_PER_CLASS", 7)
    root = tmp_path / "root"
    for package, pieces in (("big", 6), ("small", 3)):
        folder = root / package / "music"
        folder.mkdir(parents=True)
        for i in range(pieces):
            sf.write(folder / f"piece{i}.wav", np.zeros((8000 * (65 + 10 * i), 1), np.float32), 8000)
    sources = (Source("big-game", "big", "music/*.wav"), Source("small-game", "small", "music/*.wav"))
    rows, notes = plan(root, sources)
    assert notes == ["small-game: 3 pieces of 30 s or more (needs 4); left out"]
    assert {r["class"] for r in rows} == {"big-game"} and len(rows) == 7
    by_piece = {}
    for r in rows:
        by_piece.setdefault(r["piece"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_piece.values())  # no piece on two sides
    assert max(sum(1 for r in rows if r["piece"] == p) for p in by_piece) <= 2
    starts = [r["start"] for r in rows if r["piece"] == "piece0"]
    assert all(s % 30 == 0 for s in starts) and len(set(starts)) == len(starts)
