"""mrnet-store info: what a user reads about a store."""

from __future__ import annotations

import json

import numpy as np

from mrnet.store import Location, Provenance, StoreWriter
from mrnet.store.cli import app
from tests.helpers import make_store
from tests.store.util import small_store


def test_info_shows_provenance_counts_genres_and_size(runner, store):
    result = runner.invoke(app, ["info", str(store)])
    assert result.exit_code == 0, result.output
    for text in (
        "mel",
        "[0]",
        "float16",
        "62.5 frames/s",
        "done 6",
        "failed 0",
        "calm",
        "loud",
        "KiB",
        "chunk_frames=100",
    ):
        assert text in result.output


def test_info_json_is_complete(runner, store):
    result = runner.invoke(app, ["info", str(store), "--json"])
    data = json.loads(result.output)
    assert data["counts"] == {"tracks": 6, "done": 6, "failed": 0, "pending": 0}
    assert data["provenance"]["frame_rate"] == 62.5 and data["provenance"]["layers"] == [0]
    assert [(g["name"], g["count"]) for g in data["genres"]] == [("calm", 2), ("loud", 2), ("mid", 2)]
    assert data["size_bytes"] == Location.parse(store).du() > 0
    assert data["finalized"] is True


def test_info_lists_failed_tracks_with_their_errors(runner, tmp_path):
    loc = small_store(tmp_path / "f.zarr", {"ok": np.ones((1, 1, 10, 48)), "bad": "cannot decode: truncated MP3 frame"})
    result = runner.invoke(app, ["info", loc.url])
    assert result.exit_code == 0, result.output
    assert "failed 1" in result.output and "bad" in result.output and "truncated MP3" in result.output


def test_info_shows_the_task_split_sizes_and_genre_counts_without_failed_tracks(runner, tmp_path):
    ok = np.ones((1, 1, 10, 48))
    loc = small_store(tmp_path / "f.zarr", {"a": ok, "b": ok, "bad": "cannot decode: truncated MP3 frame"})
    data = json.loads(runner.invoke(app, ["info", loc.url, "--json"]).output)
    assert data["task"] == "single-label"
    assert data["genres"] == [{"name": "g", "count": 2, "failed": 1}]  # the manifest's genre table counts 3
    assert data["parts"] == {}  # small_store gives no split
    made = make_store(tmp_path / "s.zarr", per_genre=6)
    result = runner.invoke(app, ["info", str(made)], env={"COLUMNS": "200"})
    assert "single-label" in result.output and "train 12  valid 3  test 3" in result.output
    assert "failed ones apart" in result.output


def test_info_on_an_unfinished_store_reads_its_journal(runner, tmp_path):
    prov = Provenance(feature="mel", layers=[0], dim=4, frame_rate=62.5, channels=1)
    StoreWriter.open(Location.parse(tmp_path / "u.zarr"), prov).close()
    result = runner.invoke(app, ["info", str(tmp_path / "u.zarr"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["finalized"] is False and data["counts"]["tracks"] == 0


def test_info_on_something_that_is_not_a_store_says_so(runner, tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing.zarr")])
    assert result.exit_code == 2
    assert "not a feature store" in result.output
