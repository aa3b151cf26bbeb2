"""``comparison.png``: the rows of ``mrnet-compare`` as bars, labelled by what sets each row apart.

One row of two panels per task (its two headline metrics). Each bar is a row (a configuration on a
test set); its error bar is the spread over seeds (± sample std, n > 1) or, for a single run, its
95 % bootstrap interval over test tracks; its value is written above the error bar, never under it.
Over the bars of one test set, a dotted line marks chance (accuracy of one class of K, ROC-AUC 0.5)
and a dashed line the linear probe on that test set, when the comparison holds one (the probe is
then a line, not a bar). The bars fill the axis: no empty slots beside few rows.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure

from mrnet.train.tasks import HEADLINE, SINGLE, label

#: chance level of a metric for a row with ``classes`` labels (None: not drawn)
CHANCE = {"accuracy": lambda classes: 1 / classes if classes else None, "roc_auc": lambda classes: 0.5}


def tick_label(text: str, width: int = 18) -> str:
    """A row label on several short lines: the model and preset, then each option and each other difference.

    >>> print(tick_label("mrnet small --drop-route L1, 1 epoch"))
    mrnet small
    --drop-route L1
    1 epoch
    """
    parts = text.replace(" --", "\n--").replace(", ", "\n").splitlines()
    return "\n".join(textwrap.fill(part, width, break_on_hyphens=False) for part in parts)


def _errors(rows: list[dict], metric: str, scale: float) -> np.ndarray:
    """``(2, rows)`` lower and upper error lengths: ± std with several runs, the bootstrap interval with one."""
    out = np.full((2, len(rows)), np.nan)
    for i, r in enumerate(rows):
        if r["n"] > 1 and r.get(f"{metric}_std") is not None:
            out[:, i] = scale * r[f"{metric}_std"]
        elif r.get(f"{metric}_interval") and None not in r[f"{metric}_interval"]:
            low, high = r[f"{metric}_interval"]
            out[:, i] = scale * max(r[metric] - low, 0.0), scale * max(high - r[metric], 0.0)
    return out


def _lines(ax, bars: list[dict], probes: list[dict], metric: str, scale: float) -> None:
    """Chance and probe segments over the bars of each test set."""
    drawn = set()
    for key in dict.fromkeys(r.get("test_set") for r in bars):
        xs = [i for i, r in enumerate(bars) if r.get("test_set") == key]
        left, right = min(xs) - 0.45, max(xs) + 0.45
        chance = CHANCE.get(metric, lambda _: None)(bars[xs[0]].get("classes"))
        if chance is not None:
            ax.hlines(
                scale * chance,
                left,
                right,
                colors="tab:red",
                linestyles=":",
                linewidth=1.5,
                zorder=5,
                label=None if "chance" in drawn else "chance",
            )
            drawn.add("chance")
        for probe in (p for p in probes if p.get("test_set") == key):
            ax.hlines(
                scale * probe[metric],
                left,
                right,
                colors="black",
                linestyles="--",
                linewidth=1.2,
                zorder=5,
                label=None if "probe" in drawn else "linear probe",
            )
            drawn.add("probe")


def figure(rows: list[dict]) -> Figure:
    """Each task's two headline metrics, one bar per row (probes as lines over the rows of their test set)."""
    tasks: dict[str, list[dict]] = {}
    for r in rows:
        tasks.setdefault(r.get("task", SINGLE), []).append(r)
    tasks = {t: tasks[t] for t in HEADLINE if t in tasks}
    shown = {}
    for task, group in tasks.items():
        others = {r.get("test_set") for r in group if r["model"] != "linear"}
        probes = [r for r in group if r["model"] == "linear" and r.get("test_set") in others]
        shown[task] = ([r for r in group if r not in probes], probes)
    widest = max(len(bars) for bars, _ in shown.values())
    fig = Figure(figsize=(max(7.0, 2 * (1.1 * widest + 1.2)), 4.6 * len(tasks) + 0.4 * widest), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for (task, (bars, probes)), pair in zip(shown.items(), axes):
        for ax, metric in zip(pair, HEADLINE[task]):
            scale = 100 if metric == "accuracy" else 1
            values = np.asarray([scale * r[metric] for r in bars])
            errors = _errors(bars, metric, scale)
            x = np.arange(len(bars))
            ax.bar(x, values, width=0.7, color="tab:blue" if task == SINGLE else "tab:green", zorder=2)
            ax.errorbar(
                x, values, yerr=np.nan_to_num(errors), fmt="none", ecolor="black", capsize=4, linewidth=1, zorder=3
            )
            top = values + np.nan_to_num(errors[1])
            for xi, v, t in zip(x, values, top):
                ax.text(
                    xi,
                    t + 0.015 * scale,
                    f"{v:.1f}" if scale == 100 else f"{v:.3f}",
                    ha="center",
                    va="bottom",
                    fontsize="small",
                    zorder=4,
                )
            _lines(ax, bars, probes, metric, scale)
            ax.set_xticks(
                x,
                [tick_label(r.get("label") or r["model"]) for r in bars],
                fontsize="small",
                rotation=0 if len(bars) <= 4 else 30,
                ha="center" if len(bars) <= 4 else "right",
            )
            ax.set_xlim(-0.5, len(bars) - 0.5)
            ax.set_ylim(0, 1.12 * scale)
            ax.set_ylabel("%" if metric == "accuracy" else label(metric))
            ax.set_title(f"test {label(metric)}" + (f" ({task})" if len(tasks) > 1 else ""))
            ax.grid(axis="y", alpha=0.3, zorder=0)
    legend: dict[str, Artist] = {}
    for ax in fig.axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(text, handle)
    spread = "error bars: ± sample std over seeds (n > 1); 95 % bootstrap interval over test tracks (n = 1)"
    fig.legend(
        list(legend.values()),
        list(legend.keys()),
        loc="outside lower center",
        ncol=len(legend) or 1,
        fontsize="small",
        frameon=False,
    )
    fig.suptitle(spread, fontsize="small")
    return fig


__all__ = ["CHANCE", "figure"]
