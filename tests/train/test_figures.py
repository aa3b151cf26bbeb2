"""The linear probe shown as what it is (a C grid, its own time), and figures fit for a paper: comparison
bars labelled by what sets each row apart, chance and probe lines, values above the error bars, every
figure also as PDF and SVG, and weights against the uniform baseline with the spread of several runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mrnet.train import compare, plots
from mrnet.train.cli import compare_app, report_app, train_app
from mrnet.train.compare_figure import figure
from mrnet.train.loop import train
from mrnet.train.probe import GRID
from mrnet.train.report import training_seconds
from mrnet.train.runs import RunFolder
from tests.train.conftest import learnable_store, small_config

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """An MRNet run, an ablated one and a linear probe on one store, in one folder."""
    tmp = tmp_path_factory.mktemp("figures")
    store = learnable_store(tmp / "mel.zarr", frames=(160, 220))
    train(small_config(store, tmp / "runs" / "mrnet", epochs=2, batch_size=4))
    train(small_config(store, tmp / "runs" / "no-H", epochs=1, batch_size=4, drop_routes=("H",)))
    train(small_config(store, tmp / "runs" / "probe", model="linear"))
    return tmp / "runs"


# --- the probe ------------------------------------------------------------------------------------


def test_the_probes_time_is_each_fits_own_and_the_report_adds_it_up_once(runs):
    probe = RunFolder(runs / "probe")
    history = probe.metrics()
    assert len(history) == len(GRID)
    assert sum(r["seconds"] for r in history) == pytest.approx(history[-1]["elapsed"], abs=0.01 * len(GRID))
    assert probe.report()["training_seconds"] == pytest.approx(sum(r["seconds"] for r in history), abs=0.1)
    (row,) = [r for r in compare.compare([runs]) if r["model"] == "linear"]
    assert row["hours"] * 3600 == pytest.approx(sum(r["seconds"] for r in history))


def test_a_probe_written_with_cumulative_seconds_is_not_summed():
    old = [{"epoch": i + 1, "C": c, "seconds": 2.0 * (i + 1)} for i, c in enumerate(GRID)]
    assert training_seconds(old) == 2.0 * len(GRID)  # the sum would be 4.5 times that
    assert training_seconds([{"epoch": 1, "seconds": 2.0}, {"epoch": 2, "seconds": 2.0}]) == 4.0


def test_the_probes_report_names_its_c_grid_and_chosen_c_not_a_preset_and_epochs(runs):
    report = RunFolder(runs / "probe").report()
    text = (runs / "probe" / "report.md").read_text()
    model_line = next(line for line in text.splitlines() if line.startswith("- model:"))
    assert "epochs" not in model_line.replace("no epochs", "") and "preset" not in model_line
    assert (
        f"grid of {len(GRID)}" in model_line and f"C = {report['selection']['C']:g} chosen on validation" in model_line
    )


def test_the_probes_curves_are_drawn_over_its_c_grid(runs):
    history = RunFolder(runs / "probe").metrics()
    fig = plots.probe_figure(history, selected_c=history[0]["C"])
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("C")
        labels = [line.get_label() for line in ax.lines]
        assert "train (whole tracks)" in labels and not any("crops" in label for label in labels)
        (train_line,) = [line for line in ax.lines if line.get_label() == "train (whole tracks)"]
        assert list(train_line.get_xdata()) == list(GRID)


# --- comparison figure ----------------------------------------------------------------------------


def test_the_comparison_figure_labels_each_row_and_draws_chance_and_the_probe_as_lines(runs):
    rows = compare.compare([runs])
    fig = figure(rows)
    acc = fig.axes[0]
    bars = [r for r in rows if r["model"] != "linear"]
    ticks = [t.get_text() for t in acc.get_xticklabels()]
    assert [r["label"] for r in bars] == ["mrnet tiny, 2 epochs", "mrnet tiny --drop-route H, 1 epoch"]
    assert ticks == ["mrnet tiny\n2 epochs", "mrnet tiny\n--drop-route H\n1 epoch"]
    assert len(acc.patches) == len(bars)  # the probe is a line, not a bar
    assert acc.get_xlim() == pytest.approx((-0.5, len(bars) - 0.5))  # the bars fill the axis
    levels = {
        c.get_label(): c.get_segments()[0][0][1] for c in acc.collections if c.get_label() in ("chance", "linear probe")
    }
    (probe,) = [r for r in rows if r["model"] == "linear"]
    assert levels == {"chance": pytest.approx(100 / 3), "linear probe": pytest.approx(100 * probe["accuracy"])}
    tops = {}  # each value is written above its error bar's top
    for line in acc.lines:
        for x, y in zip(line.get_xdata(), line.get_ydata()):
            tops[round(float(x))] = max(tops.get(round(float(x)), 0.0), float(y))
    for text in acc.texts:
        x, y = text.get_position()
        assert y >= tops.get(round(x), 0.0)


def test_mrnet_compare_writes_pdf_and_svg_too(runs, tmp_path):
    result = runner.invoke(
        compare_app, [str(runs), "--out", str(tmp_path / "cmp"), "--format", "png,pdf,svg"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp" / "comparison.pdf").read_bytes().startswith(b"%PDF")
    assert b"<svg" in (tmp_path / "cmp" / "comparison.svg").read_bytes()
    bad = runner.invoke(compare_app, [str(runs), "--out", str(tmp_path / "x"), "--format", "png,tiff"], env=WIDE)
    assert bad.exit_code != 0 and "--format" in bad.output and "tiff" in bad.output


def test_mrnet_report_and_mrnet_train_write_every_figure_in_each_format(runs, tmp_path):
    result = runner.invoke(report_app, [str(runs / "mrnet"), "--format", "pdf,svg"], env=WIDE)
    assert result.exit_code == 0, result.output
    for name in ("curves", "confusion", "weights"):
        assert (runs / "mrnet" / "plots" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        assert (runs / "mrnet" / "plots" / f"{name}.svg").is_file() and (
            runs / "mrnet" / "plots" / f"{name}.png"
        ).is_file()
    store = RunFolder(runs / "mrnet").report()["store"]
    out = tmp_path / "trained"
    args = [
        "--store",
        store,
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--width",
        "16",
        "--embed-dim",
        "16",
        "--batch-size",
        "4",
        "--crop-seconds",
        "1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--format",
        "svg",
    ]
    result = runner.invoke(train_app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert (out / "plots" / "curves.svg").is_file() and not (out / "plots" / "curves.pdf").exists()


# --- weights --------------------------------------------------------------------------------------


def test_weights_show_the_uniform_baseline_and_the_spread_of_several_runs():
    names = ["L1", "L2", "L3", "H", "M1", "M2", "M3"]
    runs = [dict(zip(names, 1 + 0.02 * np.random.default_rng(s).standard_normal(7))) for s in range(3)]
    layers = [{"0": 1.0, "6": 1.1 + 0.1 * s, "12": 0.9} for s in range(3)]
    fig = plots.weights_figure(runs, layers)
    routes, layer = fig.axes
    assert [line.get_label() for line in routes.lines if line.get_linestyle() == "--"] == [
        "uniform (1, scale-free baseline)"
    ]
    assert routes.collections  # the whiskers of the runs' range
    dots = [line for line in routes.lines if line.get_marker() == "o"]
    assert len(dots) == 3
    w = np.asarray([[r[n] for n in names] for r in runs])
    assert [p.get_y() + p.get_height() for p in routes.patches] == pytest.approx((w / w.mean(1, keepdims=True)).mean(0))
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "3 runs" in caption and "layer weights" in caption
    single = plots.weights_figure(runs[0], {"0": 1.0})  # a Mel store: one panel, and a caption about it alone
    caption = " ".join(t.get_text() for t in single.texts)
    assert len(single.axes) == 1 and "layer" not in caption and "runs" not in caption


def test_a_cross_validation_run_draws_the_weights_of_its_folds(tmp_path):
    store = learnable_store(tmp_path / "folds.zarr", splits=False, folds=3, frames=(160, 200))
    run = train(small_config(store, tmp_path / "all", epochs=1, batch_size=4, all_folds=True))
    assert (run / "plots" / "weights.png").is_file() and "![weights](plots/weights.png)" in (
        run / "report.md"
    ).read_text()
    report = json.loads((run / "report.json").read_text())
    assert set(report["test_all_folds"]["interval"]) == {"accuracy", "macro_f1"}
