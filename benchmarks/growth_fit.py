"""Growth exponents and the log-log plots of the growth benchmark.

A cost ``c(n)`` that grows like ``n^k`` is a straight line of slope ``k`` on log-log axes. ``exponents``
gives two slopes per series: ``fit``, the least-squares slope over every size (``scipy.stats.linregress``
on the logs), and ``top``, the slope between the two largest sizes, which is what a fixed start-up cost
cannot hide: a command that pays 2 s of imports and then something quadratic shows a flat ``fit`` over
small sizes and a steep ``top``. An operation passes when ``top`` is at most :data:`LINEAR` (linear,
with room for timing noise on a shared machine).

>>> e = exponents([1000, 10000, 100000], [0.01, 0.1, 1.0])
>>> round(e["fit"], 2), round(e["top"], 2), e["linear"]
(1.0, 1.0, True)
>>> exponents([1000, 10000, 100000], [0.01, 1.0, 100.0])["linear"]
False
"""

from __future__ import annotations

import math
from pathlib import Path

LINEAR = 1.15  # the top slope allowed: linear, plus what noise does to a ratio of two timings


def exponents(n: list[int], values: list[float], floor: float = 1e-4) -> dict:
    """``fit`` and ``top`` slopes of ``values`` against ``n`` on log-log axes, and whether ``top`` is linear."""
    from scipy.stats import linregress

    pairs = [(a, max(b, floor)) for a, b in zip(n, values) if b is not None]
    if len(pairs) < 2:
        return {"fit": None, "top": None, "linear": None}
    xs, ys = [math.log(a) for a, _ in pairs], [math.log(b) for _, b in pairs]
    fit = float(linregress(xs, ys).slope)
    top = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return {"fit": fit, "top": float(top), "linear": bool(top <= LINEAR)}


def plot(series: dict[str, dict], path: Path, title: str, memory_key: str = "peak_rss_mb") -> str:
    """Time and peak memory of each operation against tracks, log-log, side by side; returns the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 6.4))
    markers = "os^vD<>pPhX*"
    colors = plt.get_cmap("tab20").colors
    for i, (name, s) in enumerate(series.items()):
        style = dict(
            marker=markers[i % len(markers)], color=colors[(2 * i) % 20 + (i // 10) % 2], label=name, markersize=4
        )
        left.plot(s["n"], [max(v, 1e-4) for v in s["seconds"]], **style)
        right.plot(s["n"], s[memory_key], **style)
    n = sorted({x for s in series.values() for x in s["n"]})
    if n:  # a guide: slope 1
        top = max(max(s["seconds"]) for s in series.values())
        left.plot(n, [top * x / n[-1] for x in n], color="grey", linestyle=":", label="slope 1 (linear)")
    for ax, label in ((left, "seconds"), (right, "peak resident memory, MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tracks")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.25)
    left.set_title(f"{title}: time")
    right.set_title(f"{title}: memory")
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.05 + 0.025 * -(-len(labels) // 3), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path.name
