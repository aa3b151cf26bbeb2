"""Stratified group k-fold and the split / fold lists users bring."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mrnet.core.errors import UserError
from mrnet.extract.datasets.folds import apply_fold_files, apply_split_files, assign_folds, stratified_group_folds


def _counts(folds: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, classes) table of items per fold and class."""
    table = np.zeros((k, labels.max() + 1), dtype=int)
    np.add.at(table, (folds, labels), 1)
    return table


@pytest.fixture
def grouped():
    """600 items, 4 unbalanced classes, 150 artists of 1-9 tracks that mostly keep to one class."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 10, size=150)
    groups = np.repeat(np.arange(sizes.size), sizes)
    main = rng.choice(4, size=sizes.size, p=[0.5, 0.25, 0.15, 0.1])
    labels = np.where(rng.random(groups.size) < 0.8, main[groups], rng.integers(0, 4, groups.size))
    return labels, groups


def test_no_group_sits_in_two_folds(grouped):
    labels, groups = grouped
    folds = stratified_group_folds(labels, groups, k=5, seed=0)
    per_group = pl.DataFrame({"g": groups, "f": folds}).group_by("g").agg(pl.col("f").n_unique())
    assert per_group["f"].max() == 1
    assert set(folds.tolist()) == set(range(5))


def test_grouped_class_counts_are_balanced(grouped):
    labels, groups = grouped
    folds = stratified_group_folds(labels, groups, k=5, seed=0)
    table = _counts(folds, labels, 5)
    spread = table.max(axis=0) - table.min(axis=0)
    # groups hold up to 9 tracks, so a class can be off by a group's worth; the greedy keeps it close
    assert spread.max() <= 3, table
    sizes = table.sum(axis=1)
    assert sizes.max() - sizes.min() <= 3, sizes


def test_without_groups_each_class_is_split_evenly():
    labels = np.repeat(np.arange(10), 100)  # GTZAN: 10 genres x 100 clips
    folds = stratified_group_folds(labels, None, k=10, seed=3)
    assert (_counts(folds, labels, 10) == 10).all()
    uneven = np.repeat(np.arange(3), [23, 11, 7])
    table = _counts(stratified_group_folds(uneven, k=4, seed=0), uneven, 4)
    assert (table.max(axis=0) - table.min(axis=0) <= 1).all()
    assert table.sum(axis=1).max() - table.sum(axis=1).min() <= 1


def test_same_seed_same_folds_other_seed_other_folds(grouped):
    labels, groups = grouped
    a = stratified_group_folds(labels, groups, k=5, seed=11)
    b = stratified_group_folds(labels, groups, k=5, seed=11)
    c = stratified_group_folds(labels, groups, k=5, seed=12)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.3


def test_null_groups_are_groups_of_their_own():
    labels = ["x"] * 8
    groups = ["a", "a", "a", "a", None, None, None, None]
    folds = stratified_group_folds(labels, groups, k=2, seed=0)
    assert len(set(folds[:4].tolist())) == 1
    assert np.bincount(folds).tolist() == [4, 4]  # the four loose items fill the other fold


def test_accepts_strings_series_and_arrays_alike():
    labels = ["rock", "jazz", "rock", "jazz", "rock", "jazz"]
    expected = stratified_group_folds(labels, k=3, seed=5)
    np.testing.assert_array_equal(stratified_group_folds(pl.Series(labels), k=3, seed=5), expected)
    np.testing.assert_array_equal(stratified_group_folds(np.array(labels), k=3, seed=5), expected)
    assert expected.dtype == np.int16


def test_fewer_than_two_folds_is_a_user_error():
    with pytest.raises(UserError, match="at least 2 folds"):
        stratified_group_folds(["a", "b"], k=1)


def test_assign_folds_sets_fold_and_clears_split():
    tracks = pl.DataFrame(
        {
            "genre": ["a", "a", "b", "b"],
            "artist": ["p", "p", "q", None],
            "split": ["train"] * 4,
            "fold": pl.Series([None] * 4, dtype=pl.Int16),
        }
    )
    out = assign_folds(tracks, k=2, seed=0)
    assert out["split"].null_count() == 4
    assert out.schema["fold"] == pl.Int16
    assert out["fold"][0] == out["fold"][1]


# -- lists -----------------------------------------------------------------------------------------


@pytest.fixture
def tracks():
    """Six GTZAN-like tracks in the WAV layout."""
    ids = ["blues.00000", "blues.00001", "blues.00002", "jazz.00000", "jazz.00001", "jazz.00002"]
    return pl.DataFrame(
        {
            "track_id": ids,
            "path": [f"genres_original/{i.split('.')[0]}/{i}.wav" for i in ids],
            "split": pl.Series([None] * 6, dtype=pl.String),
            "fold": pl.Series([0, 1, 2, 0, 1, 2], dtype=pl.Int16),
        }
    )


def _write_splits(folder, train, valid, test):
    folder.mkdir(exist_ok=True)
    for name, lines in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_split_files_match_by_path_name_stem_or_id(tmp_path, tracks):
    folder = _write_splits(
        tmp_path / "split",
        ["genres_original/blues/blues.00000.wav", "blues.00001.wav", "# a comment", ""],  # full path, file name
        ["blues/blues.00002.au"],  # the original release's extension: matched by stem
        ["jazz.00000", ".\\genres_original\\jazz\\jazz.00001.wav"],  # track id; Windows separators
    )
    out, notes = apply_split_files(tracks, folder)
    assert dict(out.select("track_id", "split").iter_rows()) == {
        "blues.00000": "train",
        "blues.00001": "train",
        "blues.00002": "valid",
        "jazz.00000": "test",
        "jazz.00001": "test",
    }
    assert out["fold"].null_count() == out.height
    assert notes == ["1 tracks are in none of the list files and are left out"]


def test_split_files_report_lines_that_match_nothing(tmp_path, tracks):
    folder = _write_splits(
        tmp_path / "split", ["blues.00000.wav", "blues.00099.wav"], ["jazz.00000.wav"], ["jazz.00001.wav"]
    )
    _, notes = apply_split_files(tracks, folder)
    assert "train.txt: 1 lines match no track, e.g. ['blues.00099.wav']" in notes


def test_a_split_file_matching_nothing_is_a_user_error(tmp_path, tracks):
    folder = _write_splits(
        tmp_path / "split", ["blues.00000.wav"], ["jazz.00000.wav"], ["rock.00000.wav", "rock.00001.wav"]
    )
    with pytest.raises(UserError, match=r"test\.txt: none of its 2 lines names a track"):
        apply_split_files(tracks, folder)


def test_a_track_in_two_split_files_is_a_user_error(tmp_path, tracks):
    folder = _write_splits(
        tmp_path / "split", ["blues.00000.wav"], ["jazz.00000.wav"], ["# from the paper", "", "blues/blues.00000.wav"]
    )
    with pytest.raises(UserError, match=r"test\.txt:3: 'blues/blues.00000.wav' is also listed in .*train\.txt"):
        apply_split_files(tracks, folder)


def test_split_folder_must_hold_all_three_files(tmp_path, tracks):
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "train_filtered.txt").write_text("blues.00000.wav\n")
    with pytest.raises(UserError, match="missing train.txt, valid.txt, test.txt.*rename e.g. train_filtered.txt"):
        apply_split_files(tracks, folder)
    with pytest.raises(UserError, match="expected a folder holding train.txt"):
        apply_split_files(tracks, tmp_path / "nowhere")


def test_an_ambiguous_file_name_is_a_user_error(tmp_path):
    tracks = pl.DataFrame(
        {
            "track_id": ["rock/a", "pop/a"],
            "path": ["rock/a.mp3", "pop/a.mp3"],
            "split": [None, None],
            "fold": pl.Series([0, 1], dtype=pl.Int16),
        }
    )
    (tmp_path / "f0.txt").write_text("a.mp3\n")
    (tmp_path / "f1.txt").write_text("pop/a.mp3\n")
    with pytest.raises(UserError, match="matches 2 tracks by file name"):
        apply_fold_files(tracks, [tmp_path / "f0.txt", tmp_path / "f1.txt"])


def test_fold_files_give_fold_i_to_file_i(tmp_path, tracks):
    files = []
    for i, ids in enumerate(
        [["blues.00000", "jazz.00000"], ["blues.00001", "jazz.00001"], ["blues.00002", "jazz.00002"]]
    ):
        files.append(tmp_path / f"fold{i}.txt")
        files[-1].write_text("\n".join(f"{x}.wav" for x in ids))
    out, notes = apply_fold_files(tracks.with_columns(fold=pl.lit(None, pl.Int16), split=pl.lit("train")), files)
    assert out["fold"].to_list() == [0, 1, 2, 0, 1, 2]
    assert out["split"].null_count() == 6 and notes == []


def test_fold_files_errors(tmp_path, tracks):
    with pytest.raises(UserError, match="one list file per fold, at least 2"):
        apply_fold_files(tracks, [tmp_path / "only.txt"])
    with pytest.raises(UserError, match="nope.txt does not exist"):
        apply_fold_files(tracks, [tmp_path / "nope.txt", tmp_path / "nope2.txt"])


def test_extraction_warns_about_folds_with_very_few_tracks_of_a_class(tmp_path):
    from mrnet.extract.config import ExtractConfig
    from mrnet.extract.pipeline import scan_dataset
    from tests.extract.test_pipeline import make_audio_folder

    root = make_audio_folder(tmp_path / "music", per_genre=3, bad=False)
    notes = scan_dataset(ExtractConfig(dataset="folder", root=root, folds=5)).notes
    assert any(
        "few tracks per class and fold: calm 3 over 5 folds (2 hold none of it)" in n and "fewer --folds" in n
        for n in notes
    )
    many = make_audio_folder(tmp_path / "more", per_genre=8, bad=False, seconds=0.2)
    assert not any("few tracks" in n for n in scan_dataset(ExtractConfig(dataset="folder", root=many, folds=2)).notes)
