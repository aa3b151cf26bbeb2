"""What a folder scan reads (issue 21, items 10, 11, 14): the user's links are followed wherever they
lead, each real file once; only regular files are opened (a FIFO hung the scan); a folder that cannot
be read is noted and skipped instead of stopping every run."""

from __future__ import annotations

import os
import threading

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from mrnet.extract import audio
from mrnet.extract.datasets import scan
from mrnet.store import FeatureStore
from tests.extract.test_errors import extract, one_line


def _wav(path, seconds=0.3, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)


def _farm(tmp_path):
    """A symlink farm: one folder per genre of links into a shared audio folder outside the root."""
    audio_dir, farm = tmp_path / "audio", tmp_path / "farm"
    for i in range(4):
        _wav(audio_dir / f"song{i}.wav", freq=220.0 * (i + 1))
    for genre, songs in (("rock", (0, 1)), ("jazz", (2, 3))):
        (farm / genre).mkdir(parents=True)
        for i in songs:
            (farm / genre / f"song{i}.wav").symlink_to(audio_dir / f"song{i}.wav")
    (farm / "rock" / "song0b.wav").symlink_to(audio_dir / "song0.wav")  # a second link to one real file
    (farm / "rock" / "gone.wav").symlink_to(audio_dir / "deleted.wav")  # broken
    return audio_dir, farm


def test_a_symlink_farm_is_read_through_its_links_each_real_file_once(tmp_path):
    audio_dir, farm = _farm(tmp_path)
    s = scan("folder", farm, folds=2)
    rows = {r["track_id"]: r for r in s.tracks.iter_rows(named=True)}
    assert sorted(rows) == ["jazz/song2", "jazz/song3", "rock/song0", "rock/song1"]
    assert rows["rock/song0"]["genre"] == "rock" and rows["jazz/song2"]["genre"] == "jazz"
    assert rows["rock/song0"]["path"] == (audio_dir / "song0.wav").resolve().as_posix()  # the file the link leads to
    assert set(s.tracks["status"]) == {"pending"}
    notes = " | ".join(s.notes)
    assert "4 audio files are read through links that lead out of" in notes
    assert "listed once" in notes and "rock/song0b.wav" in notes and "rock/gone.wav" in notes


def test_a_symlink_farm_extracts_every_track(tmp_path):
    audio_dir, farm = _farm(tmp_path)
    out = tmp_path / "s.zarr"
    result = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", root=farm)
    assert result.exit_code == 0, result.output
    tracks = FeatureStore.open(out).tracks
    assert (tracks["status"] == "done").sum() == 4, tracks.select("path", "status", "error")


def test_a_folder_link_out_of_the_root_and_a_loop_through_it(tmp_path):
    shared, root = tmp_path / "shared", tmp_path / "music"
    _wav(shared / "a.wav")
    _wav(root / "rock" / "b.wav")
    (root / "jazz").symlink_to(shared)  # a whole genre folder that lives elsewhere
    (shared / "back").symlink_to(root)  # ... and leads back in: a loop
    s = scan("folder", root, folds=2)
    assert dict(s.tracks.select("track_id", "genre").iter_rows()) == {"jazz/a": "jazz", "rock/b": "rock"}
    assert "jazz/back" in " | ".join(s.notes)


def test_a_fifo_named_wav_is_skipped_by_the_scan_and_never_opened(tmp_path):
    root = tmp_path / "music"
    _wav(root / "rock" / "a.wav")
    _wav(root / "jazz" / "b.wav")
    os.mkfifo(root / "rock" / "pipe.wav")
    os.mkfifo(tmp_path / "elsewhere.wav")
    (root / "jazz" / "linked.wav").symlink_to(tmp_path / "elsewhere.wav")
    s = _within(20, lambda: scan("folder", root, folds=2))["value"]
    assert sorted(s.tracks["path"]) == ["jazz/b.wav", "rock/a.wav"]
    assert "not regular files (a FIFO, socket or device)" in " | ".join(s.notes)


def test_a_fifo_in_a_labels_table_fails_that_track_without_opening_it(tmp_path):
    root = tmp_path / "music"
    _wav(root / "rock" / "a.wav")
    _wav(root / "jazz" / "b.wav")
    os.mkfifo(root / "rock" / "pipe.wav")
    table = tmp_path / "labels.csv"
    table.write_text("path,genre\nrock/a.wav,rock\njazz/b.wav,jazz\nrock/pipe.wav,rock\n")
    s = scan("folder", root, labels=table, folds=2)
    row = s.tracks.filter(pl.col("path") == "rock/pipe.wav").row(0, named=True)
    assert row["status"] == "failed" and "not a regular file" in row["error"]


def _within(seconds, call):
    """What ``call()`` returned or raised, or a failure when it has not ended after ``seconds``."""
    done = {}

    def target():
        try:
            done["value"] = call()
        except Exception as err:  # noqa: BLE001 - handed to the test
            done["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert done, "hangs: a FIFO was opened"
    return done


def test_decoding_a_fifo_is_refused_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "x.wav")
    done = _within(20, lambda: audio.load_with_info(tmp_path / "x.wav"))
    assert isinstance(done.get("error"), audio.AudioError) and "not a regular file (a FIFO)" in str(done["error"])


@pytest.fixture
def unreadable(monkeypatch):
    """Make listing the given folders fail as it does without read permission (root ignores modes)."""
    real, locked = os.scandir, set()

    def scandir(path="."):
        if os.path.abspath(path) in locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return lambda path: locked.add(os.path.abspath(path))


def test_an_unreadable_genre_folder_is_noted_and_skipped_and_the_run_finishes(tmp_path, unreadable):
    root = tmp_path / "music"
    for genre in ("rock", "jazz", "pop"):
        for i in range(2):
            _wav(root / genre / f"{genre}{i}.wav", freq=200.0 * (i + 2))
    unreadable(root / "pop")
    s = scan("folder", root, folds=2)
    assert sorted(set(s.tracks["genre"])) == ["jazz", "rock"]
    assert "folders cannot be read and are skipped (check their permissions): pop (Permission denied)" in " | ".join(
        s.notes
    )
    out = tmp_path / "s.zarr"
    for _ in range(2):  # and every rerun
        result = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", root=root)
        assert result.exit_code == 0 and "cannot write" not in one_line(result.output), result.output
    assert (FeatureStore.open(out).tracks["status"] == "done").sum() == 4


def test_an_unreadable_folder_in_a_labels_table_fails_its_tracks_naming_it(tmp_path, unreadable):
    root = tmp_path / "music"
    _wav(root / "rock" / "a.wav")
    _wav(root / "jazz" / "b.wav")
    table = tmp_path / "labels.csv"
    table.write_text("path,genre\nrock/a.wav,rock\njazz/b.wav,jazz\n")
    unreadable(root / "jazz")
    s = scan("folder", root, labels=table, folds=2)
    row = s.tracks.filter(pl.col("path") == "jazz/b.wav").row(0, named=True)
    assert (
        row["status"] == "failed"
        and row["error"] == f"cannot read its folder {(root / 'jazz').as_posix()} (Permission denied): jazz/b.wav"
    )


def test_an_unreadable_gtzan_genre_folder_is_noted(tmp_path, monkeypatch):
    from pathlib import Path

    from tests.extract.fixtures import make_gtzan

    root = make_gtzan(tmp_path, "genres", per_genre=2, seconds=0.2)
    real = Path.iterdir

    def iterdir(self):
        if self.name == "jazz":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    s = scan("gtzan", root, folds=2)
    assert "jazz" not in set(s.tracks["genre"]) and any("cannot read the folder" in n and "jazz" in n for n in s.notes)


def test_features_of_a_fifo_are_refused_as_mrnet_predict_asks_for_them(tmp_path):
    """mrnet-predict computes a file's features with engines.features_of_file: a FIFO is refused."""
    import torch

    from mrnet.extract.config import ExtractConfig
    from mrnet.extract.engines import FEATURES, features_of_file

    engine = FEATURES["mel"].from_config(ExtractConfig(dataset="folder", features="mel"), torch.device("cpu"))
    os.mkfifo(tmp_path / "x.mp3")
    done = _within(20, lambda: features_of_file(engine, tmp_path / "x.mp3"))
    assert isinstance(done.get("error"), audio.AudioError) and "not a regular file" in str(done["error"])
