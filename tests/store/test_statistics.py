"""Feature statistics: summed by the extraction workers per split and fold, exact for any run's training part."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from mrnet.extract.config import ExtractConfig
from mrnet.extract.pipeline import run
from mrnet.store import FeatureStore, statistics
from mrnet.store.cli import app
from mrnet.train.splits import fold_count, split_tracks
from tests.extract.test_pipeline import make_audio_folder


def direct(store: FeatureStore, tracks: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over every frame of ``tracks``, read from the store in float64: what the sums must give."""
    frames = np.concatenate([store.read(k).astype(np.float64) for k in tracks["key"]], axis=2)  # (C, L, T, D)
    return frames.mean(axis=2), frames.std(axis=2)


def labelled_folder(tmp_path: Path, column: str, values) -> tuple[Path, Path]:
    root = make_audio_folder(tmp_path / "music", genres=("calm", "loud", "mid"), per_genre=4, bad=False)
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))
    table = tmp_path / "labels.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre", column])
        for i, path in enumerate(paths):
            w.writerow([path, path.split("/")[0], values[i % len(values)]])
    return root, table


def extract(tmp_path: Path, root: Path, labels: Path) -> FeatureStore:
    cfg = ExtractConfig(
        dataset="folder",
        root=root,
        labels=labels,
        out=str(tmp_path / "s.zarr"),
        manifests_dir=tmp_path / "m",
        features="mel",
        unit_size=5,
    )
    assert run(cfg).statistics == ""
    return FeatureStore.open(cfg.store)


def test_extraction_records_the_training_split_statistics_and_not_valid_or_test(tmp_path):
    root, labels = labelled_folder(tmp_path, "split", ["train", "train", "valid", "test"])
    store = extract(tmp_path, root, labels)
    splits = split_tracks(store.tracks)
    sums, groups = statistics.training_part(store.statistics(), splits.train)
    mean, std = sums.mean_std()
    want_mean, want_std = direct(store, splits.train)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std, want_std, rtol=1e-6, atol=1e-6)
    assert groups == [statistics.group_key("train", None, True)]
    everything, _ = direct(store, store.tracks)
    assert not np.allclose(mean, everything)  # valid and test tracks would have moved it


def test_every_fold_gets_the_statistics_of_its_own_training_folds(tmp_path):
    root, labels = labelled_folder(tmp_path, "fold", [0, 1, 2, 3])
    store = extract(tmp_path, root, labels)
    groups = store.statistics()
    k = fold_count(store.tracks)
    means = []
    for fold in range(k):
        train = split_tracks(store.tracks, fold=fold).train
        assert set(train["fold"].to_list()) == set(range(k)) - {fold, (fold + 1) % k}
        mean, std = statistics.training_part(groups, train)[0].mean_std()
        want_mean, want_std = direct(store, train)
        np.testing.assert_allclose(mean, want_mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(std, want_std, rtol=1e-6, atol=1e-6)
        means.append(mean)
    assert not np.allclose(means[0], means[1])


def test_mrnet_store_stats_computes_the_same_sums_for_a_store_without_them(tmp_path):
    root, labels = labelled_folder(tmp_path, "split", ["train", "valid", "train", "test"])
    store = extract(tmp_path, root, labels)
    recorded = store.statistics()
    store.location.remove(statistics.INDEX)
    assert store.statistics() is None
    result = CliRunner().invoke(app, ["stats", store.location.url])
    assert result.exit_code == 0, result.output
    again = store.statistics()
    assert sorted(again) == sorted(recorded)
    for key in recorded:
        assert again[key].count == recorded[key].count
        np.testing.assert_allclose(again[key].sum, recorded[key].sum, rtol=1e-12)
        np.testing.assert_allclose(again[key].sumsq, recorded[key].sumsq, rtol=1e-12)


def test_changed_splits_drop_the_statistics_rather_than_keep_wrong_ones(tmp_path):
    root, labels = labelled_folder(tmp_path, "split", ["train", "train", "valid", "test"])
    store = extract(tmp_path, root, labels)
    table = pl.read_csv(labels).with_columns(split=pl.lit("train"))  # every track moves to train
    table.write_csv(labels)
    cfg = ExtractConfig(
        dataset="folder", root=root, labels=labels, out=store.location.url, manifests_dir=tmp_path / "m", features="mel"
    )
    note = run(cfg).statistics
    assert "changed split, fold or label" in note and "mrnet-store stats" in note
    assert FeatureStore.open(cfg.store).statistics() is None


def test_a_damaged_statistics_file_is_refused_with_the_fix(tmp_path):
    from mrnet.core.errors import UserError
    from mrnet.store.synthetic import synthetic_store

    path = synthetic_store(tmp_path / "s.zarr", per_genre=2)
    npz = Path(path) / statistics.ARRAYS
    npz.write_bytes(npz.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(UserError, match="checksum.*mrnet-store stats"):
        FeatureStore.open(str(path)).statistics()


def test_the_units_must_cover_exactly_the_done_tracks_in_their_groups():
    """``combine_units``' check, one join: each way the units' tracks can differ from the manifest's is named."""
    from mrnet.store.statistics import _SEEN, _not_covered

    done = pl.DataFrame({"track_id": ["a", "b", "c"], "group": ["train", "train", "test"]})

    def seen(rows):
        return pl.DataFrame({"track_id": [r[0] for r in rows], "seen": [r[1] for r in rows]}, schema=_SEEN)

    assert _not_covered(done, seen([("c", "test"), ("a", "train"), ("b", "train")])) == ""
    assert _not_covered(done, seen([("a", "train")])) == "2 done tracks have no sums (e.g. b)"
    assert _not_covered(done, seen([("a", "train"), ("b", "test"), ("c", "train")])).startswith(
        "2 tracks changed split, fold or label since they were extracted (e.g. b)"
    )
    assert _not_covered(done, seen([("a", "train"), ("b", "train"), ("c", "test"), ("z", "train")])) == (
        "the sums count tracks the manifest does not have as done"
    )
