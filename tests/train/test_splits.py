"""Which tracks train, select and test: the official split or one fold of k."""

from __future__ import annotations

import polars as pl
import pytest

from mrnet.core.errors import UserError
from mrnet.manifests.schema import class_weights
from mrnet.store import FeatureStore
from mrnet.train.splits import fold_roles, split_tracks
from tests.helpers import make_store


def test_official_split(mel_store):
    splits = split_tracks(FeatureStore.open(str(mel_store)).tracks)
    assert splits.sizes() == {"train": 12, "valid": 3, "test": 3}
    assert splits.description == "official split"


@pytest.mark.parametrize("k", [3, 5, 10])
def test_kfold_roles_cover_every_fold_without_overlap(tmp_path, k):
    store = FeatureStore.open(str(make_store(tmp_path / "s.zarr", splits=False, folds=k, per_genre=k)))
    seen_test = set()
    for fold in range(k):
        s = split_tracks(store.tracks, fold=fold)
        test_f, valid_f = set(s.test["fold"]), set(s.valid["fold"])
        assert test_f == {fold} and valid_f == {(fold + 1) % k} and test_f != valid_f
        ids = [set(p["track_id"]) for p in (s.train, s.valid, s.test)]
        assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
        assert sum(map(len, ids)) == store.tracks.height
        assert set(s.train["fold"]) == set(range(k)) - test_f - valid_f
        seen_test |= test_f
    assert seen_test == set(range(k))
    assert fold_roles(k - 1, k) == (k - 1, 0)


def test_two_folds_leave_no_training_fold(tmp_path):
    store = FeatureStore.open(str(make_store(tmp_path / "s.zarr", splits=False, folds=2)))
    with pytest.raises(UserError, match="training split is empty.*at least 3 folds"):
        split_tracks(store.tracks, fold=0)


def test_fold_out_of_range_and_folds_on_an_official_split(mel_store, fold_store):
    with pytest.raises(UserError, match="--fold 7: .* has folds 0..2"):
        split_tracks(FeatureStore.open(str(fold_store)).tracks, fold=7)
    with pytest.raises(UserError, match="has no folds"):
        split_tracks(FeatureStore.open(str(mel_store)).tracks, fold=0)
    with pytest.raises(UserError, match="no official train/valid/test split; pass --fold K or --folds all"):
        split_tracks(FeatureStore.open(str(fold_store)).tracks)


def test_failed_and_unlabelled_tracks_are_left_out(mel_store):
    tracks = FeatureStore.open(str(mel_store)).tracks
    tracks = tracks.with_columns(
        pl.when(pl.col("track_id") == "calm.000").then(pl.lit("failed")).otherwise(pl.col("status")).alias("status"),
        pl.when(pl.col("track_id") == "loud.000").then(None).otherwise(pl.col("label")).alias("label"),
    )
    assert split_tracks(tracks).train.height == 10


def test_one_class_is_refused(tmp_path):
    store = FeatureStore.open(str(make_store(tmp_path / "s.zarr", genres=("only",))))
    with pytest.raises(UserError, match="training split has 1 class"):
        split_tracks(store.tracks)


def test_class_weights_come_from_the_training_split():
    train = pl.DataFrame({"label": [0, 0, 0, 0, 1, 1, 2]}, schema={"label": pl.Int32})
    assert class_weights(train, 4) == [1.0, 2.0, 4.0, 0.0]
