"""``mrnet-extract hf``: datasets written by ``datasets`` itself (save_to_disk and to_parquet), read row by row."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from mrnet.core.errors import UserError
from mrnet.extract.datasets import scan
from mrnet.extract.engines import MelEngine
from mrnet.store import FeatureStore
from tests.extract.test_cli import invoke

datasets = pytest.importorskip("datasets")
GENRES = ["calm", "loud"]


def clip(i: int, seconds: float = 1.0, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate) + 37 * i) / rate
    return (0.2 * np.sin(2 * np.pi * (220 + 40 * i) * t)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = 22050) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV")
    return out.getvalue()


def make_dataset(n: int, *, first: int = 0, tags: bool = False, artist: bool = False):
    """``n`` clips with a ClassLabel genre (and a list of string tags, an artist): encoded WAV bytes in an Audio column."""
    columns = {
        "audio": [{"bytes": wav_bytes(clip(first + i)), "path": f"clip{first + i}.wav"} for i in range(n)],
        "genre": [GENRES[(first + i) % 2] for i in range(n)],
    }
    if tags:
        columns["tags"] = [["guitar", "slow"][: (first + i) % 3] for i in range(n)]  # [], [guitar], [guitar, slow], ...
    if artist:
        columns["artist"] = [f"artist{(first + i) // 2}" for i in range(n)]
    return (
        datasets.Dataset.from_dict(columns)
        .cast_column("audio", datasets.Audio())
        .cast_column("genre", datasets.ClassLabel(names=GENRES))
    )


@pytest.fixture
def with_splits(tmp_path) -> Path:
    root = tmp_path / "with-splits"
    datasets.DatasetDict(
        train=make_dataset(6), validation=make_dataset(2, first=6), test=make_dataset(2, first=8)
    ).save_to_disk(str(root))
    return root


def test_splits_map_onto_the_store_splits_and_labels_are_the_class_names(with_splits):
    found = scan("hf", with_splits, label_column="genre")
    rows = found.tracks.sort("track_id")
    assert rows["split"].value_counts().sort("split").rows() == [("test", 2), ("train", 6), ("valid", 2)]
    assert rows.filter(rows["track_id"] == "validation-000001").select("path", "genre").row(0) == (
        "validation/data-00000-of-00001.arrow#1",
        "loud",
    )
    assert found.genres["name"].to_list() == GENRES and found.task == "single-label"
    states = [(with_splits / s / "state.json").read_text() for s in ("train", "validation", "test")]
    assert found.origin["name"] == "with-splits" and all(
        s.count(f) for s, f in zip(states, found.origin["revision"].split(","))
    )


def test_extraction_decodes_each_row_like_the_file_it_was(with_splits, tmp_path):
    out = tmp_path / "hf.zarr"
    result = invoke(
        "hf",
        "--root",
        with_splits,
        "--label-column",
        "genre",
        "--features",
        "mel",
        "--out",
        out,
        "--manifests-dir",
        tmp_path / "m",
        "--dtype",
        "float32",
    )
    assert result.exit_code == 0, result.output
    store = FeatureStore.open(out)
    assert store.tracks["status"].to_list() == ["done"] * 10 and store.provenance.labeling == "genre"
    assert store.provenance.extraction["dataset_source"]["name"] == "with-splits"
    (tmp_path / "clip7.wav").write_bytes(wav_bytes(clip(7)))
    expected = MelEngine().extract([MelEngine().load(tmp_path / "clip7.wav")[0]])[0]
    key = store.tracks.filter(store.tracks["track_id"] == "validation-000001")["key"][0]
    assert np.array_equal(store.read(key), expected)


def test_parquet_without_splits_gets_folds_grouped_by_artist(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    make_dataset(12, artist=True).to_parquet(str(root / "clips.parquet"))
    found = scan("hf", root, label_column="genre", folds=3)
    assert found.tracks["split"].is_null().all() and sorted(set(found.tracks["fold"])) == [0, 1, 2]
    assert found.tracks.group_by("artist").agg(pl.col("fold").n_unique())["fold"].max() == 1  # one artist, one fold
    assert found.origin["revision"].startswith("parquet:") and any("3-fold" in n for n in found.notes)
    out = tmp_path / "flat.zarr"
    result = invoke(
        "hf",
        "--root",
        root,
        "--label-column",
        "genre",
        "--features",
        "mel",
        "--out",
        out,
        "--manifests-dir",
        tmp_path / "m",
    )
    assert result.exit_code == 0, result.output
    assert FeatureStore.open(out).tracks.filter(FeatureStore.open(out).tracks["status"] == "done").height == 12


def test_a_list_column_makes_a_tag_store(tmp_path):
    root = tmp_path / "tagged"
    datasets.DatasetDict(train=make_dataset(6, tags=True), test=make_dataset(3, first=6, tags=True)).save_to_disk(
        str(root)
    )
    found = scan("hf", root, label_column="tags")
    assert found.task == "multi-label" and sorted(found.genres["name"]) == ["guitar", "slow"]
    assert found.tracks.height == 6 and any("3 rows have no tags" in n for n in found.notes)
    out = tmp_path / "tags.zarr"
    result = invoke(
        "hf",
        "--root",
        root,
        "--label-column",
        "tags",
        "--features",
        "mel",
        "--out",
        out,
        "--manifests-dir",
        tmp_path / "m",
    )
    assert result.exit_code == 0, result.output
    assert FeatureStore.open(out).provenance.task == "multi-label"


def test_what_cannot_be_read_is_named(with_splits, tmp_path):
    with pytest.raises(UserError, match="--label-column is required"):
        scan("hf", with_splits)
    with pytest.raises(UserError, match="'mood' is not a column.*audio, genre"):
        scan("hf", with_splits, label_column="mood")
    with pytest.raises(UserError, match="--label-column applies to hf"):
        scan("folder", with_splits, label_column="genre")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no dataset at"):
        scan("hf", tmp_path / "empty", label_column="genre")
    escaping = tmp_path / "escaping"
    datasets.DatasetDict(train=make_dataset(2)).save_to_disk(str(escaping))
    (escaping / "dataset_dict.json").write_text('{"splits": ["train", "../with-splits/train"]}')
    with pytest.raises(UserError, match="not folders inside"):
        scan("hf", escaping, label_column="genre")
    odd = tmp_path / "odd"
    datasets.DatasetDict(train=make_dataset(2), holdout=make_dataset(2)).save_to_disk(str(odd))
    with pytest.raises(UserError, match="holdout"):
        scan("hf", odd, label_column="genre")


def test_a_row_without_audio_bytes_fails_that_track_only(tmp_path):
    """datasets embeds the audio when it writes; a file written otherwise may hold only a path, outside the
    dataset: that row fails, named, and nothing is read from that path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "pathonly"
    root.mkdir()
    table = make_dataset(4).data.table
    audio = table.column("audio").combine_chunks()
    paths = audio.field("path").to_pylist()
    paths[3] = str(tmp_path / "elsewhere.wav")
    (tmp_path / "elsewhere.wav").write_bytes(wav_bytes(clip(0)))
    data = pa.array(audio.field("bytes").to_pylist()[:3] + [None], pa.binary())
    table = table.set_column(0, "audio", pa.StructArray.from_arrays([data, pa.array(paths)], names=["bytes", "path"]))
    pq.write_table(table, root / "clips.parquet")
    out = tmp_path / "p.zarr"
    result = invoke(
        "hf",
        "--root",
        root,
        "--label-column",
        "genre",
        "--features",
        "mel",
        "--out",
        out,
        "--manifests-dir",
        tmp_path / "m",
        "--folds",
        "2",
    )
    assert result.exit_code == 0, result.output
    tracks = FeatureStore.open(out).tracks.sort("track_id")
    assert tracks["status"].to_list() == ["done", "done", "done", "failed"]
    assert "no audio bytes" in tracks["error"][3] and "clips.parquet#3" in tracks["error"][3]


def test_a_hub_name_offline_fails_at_once_with_the_way_out(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)  # "someone/gtzan" is no folder here: a hub name
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="cannot be reached.*save_to_disk"):
        scan("hf", Path("someone/gtzan"), label_column="genre")
    with pytest.raises(UserError, match="not a hub name"):
        scan("hf", Path("no/such/folder"), label_column="genre")


def test_the_default_store_is_named_after_the_dataset(with_splits, tmp_path, monkeypatch):
    """Without --out, a local copy's store (and manifests) take its folder's name, as a folder dataset's
    do; a hub name's, its own name."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke("hf", "--root", with_splits, "--label-column", "genre", "--features", "mel")
    assert result.exit_code == 0, result.output
    assert FeatureStore.open(str(work / "store" / "with-splits.zarr")).tracks.height == 10
    assert (work / "manifests" / "with-splits" / "tracks.parquet").is_file()
    assert not (work / "store" / "hf.zarr").exists()
    from mrnet.extract.config import ExtractConfig

    assert ExtractConfig(dataset="hf", root=Path("marsyas/gtzan")).store == "store/gtzan.zarr"
    cached = tmp_path / "hub" / "datasets--marsyas--gtzan" / "snapshots" / "abc123"
    cached.mkdir(parents=True)
    assert ExtractConfig(dataset="hf", root=cached).store == "store/gtzan.zarr"
