"""mrnet-compare reads each store's task: genre runs by accuracy and macro-F1, tag runs by ROC-AUC and PR-AUC, each in its own table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mrnet.train import compare
from mrnet.train.loop import train
from mrnet.train.runs import RunFolder
from tests.train.conftest import learnable_store, small_config

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two seeds on a tag store, one run on a genre store, all finished, in one folder."""
    tmp = tmp_path_factory.mktemp("compare")
    tags = learnable_store(tmp / "tags.zarr", tags=True, frames=(160, 220))
    genres = learnable_store(tmp / "genres.zarr", frames=(160, 220))
    for seed in (0, 1):
        train(small_config(tags, tmp / "runs" / f"tags-s{seed}", epochs=1, batch_size=4, seed=seed))
    train(small_config(genres, tmp / "runs" / "genres", epochs=1, batch_size=4))
    return tmp / "runs"


def test_a_tag_store_is_compared_by_roc_auc_and_pr_auc(runs):
    rows = {Path(r["store"]).name: r for r in compare.compare([runs])}
    tag, genre = rows["tags.zarr"], rows["genres.zarr"]
    assert (
        tag["task"] == "multi-label"
        and "accuracy" not in tag
        and genre["task"] == "single-label"
        and "roc_auc" not in genre
    )
    reports = [RunFolder(runs / f"tags-s{s}").report()["test"] for s in (0, 1)]
    assert tag["n"] == 2
    assert tag["roc_auc"] == pytest.approx(np.mean([r["roc_auc"] for r in reports]))
    assert tag["pr_auc_std"] == pytest.approx(np.std([r["pr_auc"] for r in reports], ddof=1))
    assert genre["accuracy"] == pytest.approx(RunFolder(runs / "genres").report()["test"]["accuracy"])


def test_mixed_tasks_get_one_table_and_one_row_of_panels_each(runs, tmp_path):
    rows = compare.compare([runs])
    assert [r["task"] for r in rows] == ["single-label", "multi-label"]  # genre stores first
    text = compare.markdown(rows)
    genres_at, tags_at = text.index("## Genres"), text.index("## Tags")
    assert genres_at < tags_at
    assert "test accuracy %" in text[genres_at:tags_at] and "ROC-AUC" not in text[genres_at:tags_at]
    assert "test ROC-AUC | test PR-AUC" in text[tags_at:] and "accuracy" not in text[tags_at:].split("Test numbers")[0]
    fig = compare.figure(rows)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "test accuracy (single-label)",
        "test macro-F1 (single-label)",
        "test ROC-AUC (multi-label)",
        "test PR-AUC (multi-label)",
    ]
    tag_bars = fig.axes[2].patches
    assert len(tag_bars) == 1 and tag_bars[0].get_height() == pytest.approx(rows[1]["roc_auc"])
    assert fig.axes[0].patches[0].get_height() == pytest.approx(100 * rows[0]["accuracy"])  # accuracy in %
    compare.write(rows, tmp_path)
    assert json.loads((tmp_path / "comparison.json").read_text())[1]["task"] == "multi-label"
    assert (tmp_path / "comparison.png").stat().st_size > 0


def test_one_task_has_no_task_headings(runs):
    text = compare.markdown([r for r in compare.compare([runs]) if r["task"] == "multi-label"])
    assert "## " not in text and "| tags.zarr |" in text and "test ROC-AUC" in text


def test_the_command_prints_each_tasks_metrics(runs, tmp_path):
    from mrnet.train.cli import compare_app

    result = runner.invoke(compare_app, [str(runs), "--out", str(tmp_path / "cmp")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "multi-label" in result.output and "ROC-AUC" in result.output and "accuracy" in result.output
    assert (tmp_path / "cmp" / "comparison.md").exists()


def test_runs_of_two_presets_on_one_store_are_two_rows(runs, tmp_path):
    rows = compare.compare([runs])
    (genre,) = [r for r in rows if r["task"] == "single-label"]
    other = tmp_path / "other"
    train(small_config(Path(genre["store"]), other, epochs=1, batch_size=4, preset="small", embed_dim=8))
    both = [r for r in compare.compare([runs, other]) if r["task"] == "single-label"]
    assert sorted(r["preset"] for r in both) == ["small", "tiny"] and all(r["n"] == 1 for r in both)
    assert sorted(r["label"] for r in both) == ["mrnet small --embed-dim 8", "mrnet tiny --embed-dim 16"]


def test_a_preset_name_over_the_same_values_is_the_same_configuration(runs, tmp_path):
    """The fingerprint is the resolved values, not the name they came under: same values, same row."""
    (genre,) = [r for r in compare.compare([runs]) if r["task"] == "single-label"]
    train(small_config(Path(genre["store"]), tmp_path / "renamed", epochs=1, batch_size=4, preset="small", seed=3))
    (row,) = [r for r in compare.compare([runs, tmp_path / "renamed"]) if r["task"] == "single-label"]
    assert row["n"] == 2
