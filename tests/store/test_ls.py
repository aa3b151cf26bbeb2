"""mrnet-store ls: the stores in a folder."""

from __future__ import annotations

import json

from mrnet.store import Location
from mrnet.store.cli import app
from tests.helpers import make_store


def test_ls_lists_stores_and_skips_other_entries(runner, tmp_path):
    make_store(tmp_path / "gtzan-mel.zarr", per_genre=1)
    make_store(tmp_path / "fma-wavlm.zarr", per_genre=2, feature="wavlm", layers=3, dim=8)
    (tmp_path / "notes.txt").write_text("not a store")
    (tmp_path / "plain.zarr").mkdir()
    result = runner.invoke(app, ["ls", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    stores = json.loads(result.output)
    assert [(s["name"], s["feature"], s["model"], s["layers"], s["tracks"]) for s in stores] == [
        ("fma-wavlm.zarr", "wavlm", "synthetic", 3, 6),
        ("gtzan-mel.zarr", "mel", None, 1, 3),
    ]
    assert stores[1]["size_bytes"] == Location.parse(tmp_path / "gtzan-mel.zarr").du()
    table = runner.invoke(app, ["ls", str(tmp_path)], env={"COLUMNS": "200"}).output
    assert "fma-wavlm.zarr" in table and "synthetic" in table and "6/6 done" in table
    row = next(line for line in table.splitlines() if "fma-wavlm.zarr" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[1:8] == ["synthetic", "genres", "wavlm", "synthetic", "0-2", "mono", "float16"]
    assert cells[9] == "train 6"  # two tracks a genre: all in training


def test_ls_shows_the_task_and_the_extracted_tracks_per_split_or_fold(runner, tmp_path):
    make_store(tmp_path / "folds.zarr", per_genre=3, splits=False, folds=3)
    make_store(tmp_path / "tags.zarr", per_genre=6, tags=True)
    stores = {s["name"]: s for s in json.loads(runner.invoke(app, ["ls", str(tmp_path), "--json"]).output)}
    assert stores["folds.zarr"]["task"] == "single-label" and stores["folds.zarr"]["parts"] == {
        "fold 0": 3,
        "fold 1": 3,
        "fold 2": 3,
    }
    assert stores["tags.zarr"]["task"] == "multi-label" and stores["tags.zarr"]["parts"] == {
        "train": 12,
        "valid": 3,
        "test": 3,
    }
    table = runner.invoke(app, ["ls", str(tmp_path)], env={"COLUMNS": "220"}).output
    assert "fold 0 3  fold 1 3  fold 2 3" in table and "tags" in table


def test_ls_of_a_store_lists_it_and_of_an_empty_folder_says_so(runner, store, tmp_path):
    assert json.loads(runner.invoke(app, ["ls", str(store), "--json"]).output)[0]["name"] == "local.zarr"
    (tmp_path / "empty").mkdir()
    assert "no stores under" in runner.invoke(app, ["ls", str(tmp_path / "empty")]).output
