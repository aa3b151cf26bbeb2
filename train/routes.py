"""MRNet's route weights W of several finished runs side by side: the paper's Fig. 3, which sets the
weights a genre model learns beside those a mood model learns.

``route_weights(runs)`` reads each MRNet run's W (the mean over the folds of a ``--folds all`` run),
divides it by its mean (W is nearly scale-free, docs/model.md: only ratios inside one model mean
anything) and labels it with its model, store and task. ``routes_figure`` draws one group of bars per
route, one bar per run, each starting at the initial value 1. ``mrnet-compare`` writes it as
``routes.png`` when two or more of the runs it compares have route weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mrnet.train.runs import RunFolder


def route_weights(runs: list[RunFolder]) -> dict[str, dict[str, float]]:
    """Run label -> route -> W / mean(W), for each run whose report holds route weights (MRNet's)."""
    found: dict[str, dict[str, float]] = {}
    for run in runs:
        report = run.report()
        parts = [run.fold(k).report() for k in range(report["n"])] if "folds" in report else [report]
        weights = [p["route_weights"] for p in parts if p.get("route_weights")]
        if not weights:
            continue
        names = list(weights[0])
        w = np.mean([[fold[r] for r in names] for fold in weights], axis=0)
        label = f"{getattr(run.config(), 'model', 'mrnet')} · {Path(report['store']).stem} ({'tags' if 'tags' in parts[0] else 'genres'})"
        if label in found:
            label = f"{label} {run.path.name}"
        found[label] = dict(zip(names, (w / w.mean()).tolist()))
    return found


def routes_figure(runs: dict[str, dict[str, float]]) -> Figure:
    """Grouped bars: x is the route, one bar per run, each from the initial value 1 to W / mean(W)."""
    routes = list(dict.fromkeys(r for weights in runs.values() for r in weights))  # a run may drop routes
    fig = Figure(figsize=(max(6.0, 0.9 * len(routes) * max(1, len(runs)) / 2 + 3), 4.4))
    ax = fig.subplots()
    width = 0.8 / len(runs)
    spread = 0.002
    for i, (label, weights) in enumerate(runs.items()):
        values = np.array([weights.get(r, np.nan) for r in routes])
        x = np.arange(len(routes)) + (i - (len(runs) - 1) / 2) * width
        ax.bar(x, values - 1.0, bottom=1.0, width=width, label=label)
        spread = max(spread, float(np.nanmax(np.abs(values - 1.0))))
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(routes)), routes)
    ax.set_ylim(1 - 1.4 * spread, 1 + 1.4 * spread)
    ax.set_xlabel("route")
    ax.set_ylabel("W / mean(W)  (dashed: initial value)")
    ax.set_title("MRNet route weights W per run (paper Fig. 3)", pad=12 + 16 * ((len(runs) + 2) // 3))
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(3, len(runs)), frameon=False)
    fig.text(
        0.5,
        -0.01,
        "W is nearly scale-free: compare the pattern across routes, not the heights across runs (docs/model.md).",
        ha="center",
        va="top",
        fontsize="small",
    )
    return fig


def plot_routes(path: Path, runs: dict[str, dict[str, float]]) -> Path:
    """``routes_figure`` saved as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    routes_figure(runs).savefig(path, dpi=100, bbox_inches="tight")
    return path


__all__ = ["plot_routes", "route_weights", "routes_figure"]
