"""The layer-wise probing figure: the linear probe's test metric per stored layer with its 95 % interval,
and MRNet's learned layer weights on a second axis when a run was given.

Built as a ``matplotlib.figure.Figure`` (no pyplot), like train/plots.py's figures; tests read its data.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from mrnet.train.tasks import label, show

PROBE_COLOR, WEIGHT_COLOR = "tab:blue", "tab:orange"


def layer_probe_figure(result: dict) -> Figure:
    """Test metric per layer (points joined by a line, 95 % bootstrap intervals as bars, chance dotted, the
    best layer ringed); with a run, its layer weights as shares of their sum (bars; several folds: their
    mean, whiskers the range) on the right axis, against the uniform share (dashed)."""
    rows, metric = result["layers"], result["metric"]
    x = np.asarray([r["layer"] for r in rows])
    y = np.asarray([r["test"][metric] for r in rows], dtype=float)
    low = np.asarray([r["interval"][metric][0] for r in rows], dtype=float)
    high = np.asarray([r["interval"][metric][1] for r in rows], dtype=float)
    fig = Figure(figsize=(max(7.0, 0.5 * len(rows) + 4.0), 5.6))
    ax = fig.subplots()
    handles: list = []
    weight_handles: list = []
    run = result.get("run")
    if run:
        weight_handles = _weights(ax.twinx(), run)
        ax.set_zorder(2)  # the probe's line in front of the weights' bars
        ax.patch.set_visible(False)
    yerr = np.vstack([np.nan_to_num(y - low), np.nan_to_num(high - y)])
    handles.append(
        ax.errorbar(
            x,
            y,
            yerr=yerr,
            fmt="o-",
            color=PROBE_COLOR,
            ecolor=PROBE_COLOR,
            capsize=4,
            linewidth=1.5,
            label=f"linear probe, test {label(metric)} (95 % interval)",
        )
    )
    best = result["best_layer"]
    if len(rows) > 1:
        at = int(np.flatnonzero(x == best)[0])
        handles.append(
            ax.scatter(
                [best],
                [y[at]],
                s=160,
                facecolors="none",
                edgecolors="black",
                zorder=5,
                label=f"highest test {label(metric)}: layer {best}",
            )
        )
    handles.append(
        ax.axhline(
            result["chance"],
            color="gray",
            linestyle=":",
            linewidth=1,
            label=f"chance ({show(metric, result['chance'])})",
        )
    )
    ax.set_xticks(x)
    ax.set_xlim(x.min() - 0.6, x.max() + 0.6)
    top = float(np.nanmax(np.concatenate([high, y, [result["chance"]]])))
    bottom = float(np.nanmin(np.concatenate([low, y, [result["chance"]]])))
    margin = 0.06 * max(top - bottom, 0.05)  # room for the markers at 100 % (or ROC-AUC 1)
    ax.set_ylim(max(0.0, bottom - margin), top + margin)
    if metric == "accuracy":
        ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f} %")
    ax.set_ylabel(f"test {label(metric)}", color=PROBE_COLOR)
    ax.set_xlabel(
        "stored layer (0: the encoder's input to its first transformer layer)"
        if result["feature"] in ("ssl", "wavlm")
        else "stored layer"
    )
    ax.grid(axis="y", alpha=0.3)
    name = result["store"].rstrip("/").rsplit("/", 1)[-1]
    one = " (the store holds one layer)" if result["one_layer"] else ""
    ax.set_title(f"Linear probe per layer: {name}{one}")
    sizes = result["sizes"]
    fig.subplots_adjust(bottom=0.3)
    fig.legend(
        handles=handles + weight_handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.07),
        ncol=2,
        fontsize="small",
        frameon=False,
    )
    fig.text(
        0.5,
        0.01,
        f"Each layer probed alone (C chosen on validation); intervals over the {sizes['test']} test tracks, {result['split']}."
        + (" Orange bars: MRNet's learned layer weights (share of their sum) from the uniform share." if run else ""),
        ha="center",
        va="bottom",
        fontsize="small",
        wrap=True,
    )
    return fig


def _weights(ax, run: dict) -> list:
    """The run's layer weights as shares of their sum on ``ax`` (the right axis); returns the legend handles."""
    layers = run["layers"]
    shares = np.asarray([[s[k] for k in layers] for s in run["shares"]], dtype=float)
    mean = shares.mean(axis=0)
    x = np.asarray([int(k) for k in layers])
    many = len(shares) > 1
    uniform = 1 / len(layers)
    bars = ax.bar(  # from the uniform share up or down to each weight: never a cropped bar whose length misleads
        x,
        mean - uniform,
        bottom=uniform,
        width=0.6,
        color=WEIGHT_COLOR,
        alpha=0.35,
        label="MRNet layer weight, share of sum" + (f" (mean of {len(shares)} folds)" if many else ""),
    )
    if many:
        ax.errorbar(
            x, mean, yerr=[mean - shares.min(0), shares.max(0) - mean], fmt="none", ecolor=WEIGHT_COLOR, capsize=3
        )
    line = ax.axhline(
        uniform, color=WEIGHT_COLOR, linestyle="--", linewidth=1, label=f"uniform share (1/{len(layers)})"
    )
    spread = max(float(np.abs(shares - uniform).max()), 0.02 * uniform)
    ax.set_ylim(uniform - 1.4 * spread, uniform + 1.4 * spread)
    ax.set_ylabel("MRNet layer weight, share of their sum", color=WEIGHT_COLOR)
    return [bars, line]
