"""Two entries for one track are refused by every reader, naming both (issue 21, item 4): before, each
trained as one track twice, or one file under two labels."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import soundfile as sf

from mrnet.core.errors import UserError
from mrnet.extract.datasets import scan
from tests.extract.fixtures import make_fma, make_gtzan, make_mtat


def _wav(path, seconds=0.2):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000)


def test_a_folder_with_one_name_in_two_formats_is_refused_naming_both(tmp_path):
    for name in ("rock/dup.wav", "rock/other.wav", "jazz/a.wav"):
        _wav(tmp_path / name)
    sf.write(tmp_path / "rock" / "dup.flac", np.zeros(3200, np.float32), 16000)
    with pytest.raises(
        UserError,
        match=r"track id is given to more than one entry, e\.g\. 'rock/dup': rock/dup\.flac and rock/dup\.wav",
    ):
        scan("folder", tmp_path, folds=2)


@pytest.mark.parametrize("second", ["rock/./x.wav", "rock//x.wav", "./rock/x.wav", "rock\\x.wav"])
def test_one_file_named_two_ways_in_a_labels_table_is_refused(tmp_path, second):
    root = tmp_path / "music"
    for name in ("rock/x.wav", "jazz/y.wav", "jazz/z.wav", "rock/w.wav"):
        _wav(root / name)
    table = tmp_path / "labels.csv"
    table.write_text(f"path,genre\nrock/x.wav,rock\njazz/y.wav,jazz\n{second},jazz\njazz/z.wav,jazz\nrock/w.wav,rock\n")
    with pytest.raises(UserError) as err:
        scan("folder", root, labels=table, folds=2)
    message = str(err.value)
    assert "listed more than once" in message and "'rock/x.wav'" in message and repr(second) in message, message
    assert "data row 1" in message and "data row 3" in message


def test_fma_tracks_csv_listing_a_track_twice_is_refused(tmp_path):
    root = make_fma(tmp_path, "small")
    tracks = root / "fma_metadata" / "tracks.csv"
    rows = list(csv.reader(tracks.open(newline="", encoding="utf-8")))
    with tracks.open("a", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerow(rows[3])  # the first track's row again
    tid = rows[3][0].zfill(6)
    with pytest.raises(
        UserError,
        match=rf"fma_small: 1 track id is given to more than one entry, e\.g\. '{tid}': "
        rf"fma_small/{tid[:3]}/{tid}\.mp3 both times",
    ):
        scan("fma_small", root)


def test_gtzan_one_clip_as_au_and_wav_is_refused(tmp_path):
    root = make_gtzan(tmp_path, "genres", per_genre=1)
    sf.write(root / "genres" / "blues" / "blues.00000.wav", np.zeros(2205, np.float32), 22050)
    with pytest.raises(
        UserError, match=r"'blues\.00000': genres/blues/blues\.00000\.au and genres/blues/blues\.00000\.wav"
    ):
        scan("gtzan", root)


def test_an_mtat_clip_on_two_rows_is_refused(tmp_path):
    root = make_mtat(tmp_path, per_folder=1, seconds=0.2)
    annotations = root / "annotations_final.csv"
    lines = annotations.read_text().splitlines()
    annotations.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(
        UserError, match=r"mtat: 1 track id is given to more than one entry, e\.g\. '0': 0/.*\.mp3 both times"
    ):
        scan("mtat", root)


def test_one_file_listed_under_two_ids_is_refused(tmp_path):
    """Two clip ids naming one mp3_path: one file, trained as two tracks."""
    root = make_mtat(tmp_path, per_folder=1, seconds=0.2)
    annotations = root / "annotations_final.csv"
    lines = annotations.read_text().splitlines()
    annotations.write_text("\n".join([*lines, lines[1].replace('"0"', '"777"', 1)]) + "\n")
    with pytest.raises(
        UserError, match=r"1 path is given to more than one entry, e\.g\. '0/.*\.mp3': as track '0' and as track '777'"
    ):
        scan("mtat", root)
    shutil.rmtree(root)
