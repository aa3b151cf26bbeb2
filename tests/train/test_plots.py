"""Plots read as a paper's figures: checked by their data and axes, not their pixels."""

from __future__ import annotations

import numpy as np

from mrnet.train import plots


def test_a_one_epoch_run_draws_its_points_on_whole_epochs():
    fig = plots.curves_figure(
        [{"epoch": 1, "train_loss": 1.0, "valid_loss": 0.9, "train_accuracy": 0.5, "valid_accuracy": 0.6}], selected=1
    )
    loss, acc = fig.axes
    drawn = [line for line in loss.lines if line.get_label() in ("train (crops)", "valid")]
    assert drawn and all(line.get_marker() == "o" and len(line.get_xdata()) == 1 for line in drawn)
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in acc.get_xticks())


def test_confusion_has_a_colour_bar_and_readable_counts():
    fig = plots.confusion_figure(np.arange(100).reshape(10, 10), [f"g{i}" for i in range(10)])
    main, bar = fig.axes
    assert bar.get_ylabel() == "share of the true class"
    assert len(main.texts) == 100 and min(t.get_fontsize() for t in main.texts) >= 10


def test_folds_show_chance_and_keep_the_legend_off_the_bars():
    rows = [{"fold": k, "test_accuracy": 0.8, "test_macro_f1": 0.7} for k in range(3)]
    fig = plots.folds_figure(
        rows, {"test_accuracy": 0.8, "test_macro_f1": 0.7}, {"test_accuracy": 0.0, "test_macro_f1": 0.0}, chance=0.25
    )
    acc = fig.axes[0]
    chance = [line for line in acc.lines if line.get_label().startswith("chance")]
    assert chance and list(chance[0].get_ydata()) == [0.25, 0.25]
    legend = acc.get_legend()
    assert legend.get_bbox_to_anchor().y0 < acc.get_window_extent().y0  # below the axes, not on the bars


def test_weights_are_shown_relative_to_their_initial_value_on_a_fitted_axis():
    routes = {"L1": 1.01, "L2": 0.98, "L3": 1.0, "H": 0.99, "M1": 1.0, "M2": 1.0, "M3": 1.02}
    fig = plots.weights_figure(routes, {"0": 1.0, "6": 1.2, "12": 0.8})
    r, layer = fig.axes
    tops = [p.get_y() + p.get_height() for p in r.patches]  # bars run from the initial value to the weight
    assert all(p.get_y() == 1.0 for p in r.patches) and np.isclose(np.mean(tops), 1.0)
    assert r.get_ylim()[0] > 0.9 and r.get_ylim()[1] < 1.1
    assert [tuple(line.get_ydata()) for line in r.lines] == [(1.0, 1.0)]  # the initial value
    assert np.isclose(sum(p.get_y() + p.get_height() for p in layer.patches), 1.0)
    assert [tuple(line.get_ydata()) for line in layer.lines] == [(1 / 3, 1 / 3)]
    assert any("scale-free" in t.get_text() for t in fig.texts)
    single = plots.weights_figure(routes, {"0": 1.0})
    assert len(single.axes) == 1  # a Mel store's one layer is not a panel of one bar
