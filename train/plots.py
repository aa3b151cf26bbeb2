"""PNG plots of a run: training curves, the confusion matrix, and the learned route and layer weights.

The weights plot is the paper's Fig. 3 (route weights W) beside the layer weights, which show the
depths of the feature extractor a task uses. Figures are built with ``matplotlib.figure.Figure``
(no pyplot, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_run(folder: Path, report: dict, history: list[dict]) -> list[Path]:
    """Write curves.png, confusion.png and (for a model with route weights) weights.png into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_curves(folder / "curves.png", history, selected=report["selection"]["epoch"]),
        plot_confusion(folder / "confusion.png", np.asarray(report["test"]["confusion"]), report["genres"]),
    ]
    if report["route_weights"]:
        paths.append(plot_weights(folder / "weights.png", report["route_weights"], report["layer_weights"]))
    return paths


def plot_curves(path: Path, history: list[dict], *, selected: int | None) -> Path:
    """Loss and accuracy per epoch; test dashed (never used for selection); the selected epoch marked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, ax, label, style in (
        ("train_loss", ax_loss, "train (crops)", "-"), ("valid_loss", ax_loss, "valid", "-"), ("test_loss", ax_loss, "test", "--"),
        ("train_accuracy", ax_acc, "train (crops)", "-"), ("valid_accuracy", ax_acc, "valid", "-"),
        ("test_accuracy", ax_acc, "test (not used for selection)", "--"),
    ):
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            ax.plot(*zip(*points), style, label=label)
    for ax, title in ((ax_loss, "loss (class-weighted)"), (ax_acc, "accuracy")):
        if selected is not None:
            ax.axvline(selected, color="grey", linestyle=":", label=f"selected (epoch {selected})")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def plot_confusion(path: Path, confusion: np.ndarray, genres: list[str], *, title: str = "test confusion (rows normalised)") -> Path:
    """Row-normalised confusion matrix with counts in the cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.5 * len(genres) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if len(genres) <= 30:
        for (i, j), n in np.ndenumerate(confusion):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(genres)), genres, rotation=90)
        ax.set_yticks(range(len(genres)), genres)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # room for the rotated genre names
    return path


def plot_folds(path: Path, rows: list[dict], mean: dict, std: dict) -> Path:
    """Per-fold test accuracy and macro-F1 of the validation-selected checkpoints, with the mean ± std band."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folds = [r["fold"] for r in rows]
    fig = Figure(figsize=(max(6.0, 0.6 * len(folds) + 3), 3.5))
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "test_accuracy", "test accuracy"), (axes[1], "test_macro_f1", "test macro-F1")):
        ax.bar(folds, [r[key] for r in rows], color="tab:blue")
        if key in mean:
            m, s = mean[key], std[key]
            ax.axhline(m, color="black", label=f"mean {m:.3f} ± {s:.3f}")
            ax.axhspan(m - s, m + s, color="grey", alpha=0.2)
            ax.legend(fontsize="small", loc="lower right")
        ax.set_ylim(0, 1)
        ax.set_xticks(folds)
        ax.set_xlabel("fold")
        ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_weights(path: Path, routes: dict[str, float], layers: dict[str, float]) -> Path:
    """Bar charts of the route weights W (paper Fig. 3) and the layer weights."""
    fig = Figure(figsize=(10, 3.5))
    ax_r, ax_l = fig.subplots(1, 2)
    ax_r.bar(list(routes), list(routes.values()), color="tab:blue")
    ax_r.set_title("route weights W")
    ax_l.bar(list(layers), list(layers.values()), color="tab:orange")
    ax_l.set_title("layer weights")
    ax_l.set_xlabel("stored layer")
    fig.subplots_adjust(bottom=0.15)
    fig.savefig(path, dpi=100)
    return path
