"""Extraction over miniature copies of the real datasets, known bad files included."""

from __future__ import annotations

import polars as pl

from mrnet.extract.config import ExtractConfig
from mrnet.extract.pipeline import run
from mrnet.store import FeatureStore
from tests.extract.fixtures import make_fma, make_gtzan, make_melon


def extract(tmp_path, dataset, root, **kw):
    cfg = ExtractConfig(
        dataset=dataset,
        root=root,
        out=str(tmp_path / f"{dataset}.zarr"),
        manifests_dir=tmp_path / "m",
        features="mel",
        **kw,
    )
    return run(cfg), FeatureStore.open(cfg.store)


def status(tracks: pl.DataFrame, track_id: str) -> tuple[str, str | None]:
    row = tracks.filter(pl.col("track_id") == track_id).row(0, named=True)
    return row["status"], row["error"]


def test_gtzan_corrupt_jazz_00054_is_recorded_and_the_rest_extracted(tmp_path):
    root = make_gtzan(tmp_path / "GTZAN", indices=[0, 54], seconds=0.5)
    summary, store = extract(tmp_path, "gtzan", root, folds=2)
    state, error = status(store.tracks, "jazz.00054")
    assert state == "failed" and "jazz.00054.wav" in error
    assert (store.tracks["status"] == "done").sum() == 19
    assert store.provenance.dataset == "gtzan" and store.genres.height == 10


def test_fma_known_bad_files(tmp_path):
    root = make_fma(tmp_path / "fma", "small")
    summary, store = extract(tmp_path, "fma_small", root)
    tracks = store.tracks
    assert status(tracks, "133297")[0] == "failed"  # 1,752 bytes, no audio
    state, error = status(tracks, "000020")  # listed in tracks.csv, no audio file
    assert state == "failed" and "000020.mp3" in error
    assert status(tracks, "098565")[0] == "done"  # far too short, still a few Mel frames
    assert set(tracks["split"].unique().to_list()) <= {"train", "valid", "test"}
    assert store.tracks.filter(pl.col("status") == "done")["frames"].min() >= 1


def test_melon_arrays_are_ingested_as_shipped(tmp_path):
    import numpy as np

    root = make_melon(tmp_path / "melon")
    summary, store = extract(tmp_path, "melon", root)
    done = store.tracks.filter(pl.col("status") == "done")
    mel = store.provenance.extraction["mel"]
    assert (
        done.height > 0
        and mel["source"].startswith("Melon Playlist Dataset")
        and (mel["n_mels"], mel["hop_length"]) == (48, 256)
    )
    row = done.row(0, named=True)
    shipped = np.load(root / row["path"])
    assert np.array_equal(store.read(row["key"])[0, 0], shipped.T.astype(np.float16))


def test_a_miniature_mtat_extracts_into_a_multi_label_store(tmp_path):
    from typer.testing import CliRunner

    from mrnet.store.cli import app as store_app
    from tests.extract.fixtures import make_mtat

    root = make_mtat(tmp_path / "mtat")
    summary, store = extract(tmp_path, "mtat", root)
    assert store.provenance.task == "multi-label" and store.provenance.labeling == "top50"
    done = store.tracks.filter(pl.col("status") == "done")
    assert done.height == 49 and done["tags"].list.len().min() >= 1  # 48 clips and the one tagged 'lol'
    assert store.tracks.filter(pl.col("status") == "failed")["track_id"].to_list() == ["35644"]
    info = CliRunner().invoke(store_app, ["info", str(store.location.url)], env={"COLUMNS": "200"})
    assert info.exit_code == 0 and "multi-label  (50 tags)" in info.output
