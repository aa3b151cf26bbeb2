"""Plots of a run: training curves, the confusion matrix (genres) or per-tag ROC-AUC (tags), and the
learned route and layer weights; PNG, and with ``formats`` also PDF and SVG beside each PNG.

The weights plot is the paper's Fig. 3 (route weights W) beside the layer weights, which show the
depths of the feature extractor a task uses. Each figure is built by a ``*_figure`` function that
returns a ``matplotlib.figure.Figure`` (no pyplot, no display needed; tests read its data and axes),
and saved by the ``plot_*`` function of the same name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def plot_run(folder: Path, report: dict, history: list[dict], formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write curves.png, confusion.png (genres) or tags.png (tags) and, for a model with route weights,
    weights.png into ``folder`` (each also in the other ``formats``); returns the PNGs' paths."""
    folder.mkdir(parents=True, exist_ok=True)
    tagging = "per_tag" in report["test"]
    from mrnet.train.render import model_name

    probe = model_name(report.get("config", {})) == "linear"
    figures = {
        "curves.png": (
            probe_figure(history, selected_c=report["selection"].get("C"))
            if probe
            else curves_figure(
                history, selected=report["selection"]["epoch"], metric="roc_auc" if tagging else "accuracy"
            )
        )
    }
    if tagging:
        figures["tags.png"] = tags_figure(report["test"]["per_tag"])
    else:
        figures["confusion.png"] = confusion_figure(np.asarray(report["test"]["confusion"]), report["genres"])
    if report.get("route_weights"):
        figures["weights.png"] = weights_figure([report["route_weights"]], [report["layer_weights"]])
    return [save_figure(fig, folder / name, formats) for name, fig in figures.items()]


def save_figure(fig: Figure, path: Path, formats: tuple[str, ...] = ("png",)) -> Path:
    """Write ``fig`` at ``path`` (a .png) and beside it in each other format of ``formats``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for fmt in dict.fromkeys(["png", *formats]):
        fig.savefig(path.with_suffix(f".{fmt}"), dpi=100, bbox_inches="tight")
    return path


_save = save_figure


# --- curves ---------------------------------------------------------------------------------------
METRIC_TITLES = {"accuracy": "accuracy", "roc_auc": "macro ROC-AUC"}


def curves_figure(history: list[dict], *, selected: int | None, metric: str = "accuracy") -> Figure:
    """Loss and ``metric`` (accuracy, or ROC-AUC for tags) per epoch, each point marked (a one-epoch
    run shows its point); test dashed (never used for selection); the selected epoch marked; whole
    epochs on the axis."""
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, ax, label, style in (
        ("train_loss", ax_loss, "train (crops)", "-"),
        ("valid_loss", ax_loss, "valid", "-"),
        ("test_loss", ax_loss, "test", "--"),
        (f"train_{metric}", ax_acc, "train (crops)", "-"),
        (f"valid_{metric}", ax_acc, "valid", "-"),
        (f"test_{metric}", ax_acc, "test (not used for selection)", "--"),
    ):
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            ax.plot(*zip(*points), style, marker="o", markersize=3, label=label)
    epochs = sorted({r["epoch"] for r in history})
    loss_title = "loss (binary cross-entropy per tag)" if metric == "roc_auc" else "loss (class-weighted)"
    for ax, title in ((ax_loss, loss_title), (ax_acc, METRIC_TITLES.get(metric, metric))):
        if selected is not None:
            ax.axvline(selected, color="grey", linestyle=":", label=f"selected (epoch {selected})")
        if 0 < len(epochs) <= 12:  # a short run: every epoch a tick, half an epoch of room either side
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if ax.lines:
            ax.legend(fontsize="small")
    return fig


def plot_curves(path: Path, history: list[dict], *, selected: int | None, metric: str = "accuracy") -> Path:
    if history and all("C" in r for r in history):  # a linear probe's regularisation grid
        return _save(probe_figure(history, selected_c=next((r["C"] for r in history if r.get("best")), None)), path)
    return _save(curves_figure(history, selected=selected, metric=metric), path)


def probe_figure(history: list[dict], *, selected_c: float | None) -> Figure:
    """The linear probe's fit: loss and accuracy against the regularisation strength C (log axis) of its
    grid, train on whole tracks, the C chosen on validation marked; there are no epochs."""
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, ax, label, style in (
        ("train_loss", ax_loss, "train (whole tracks)", "-"),
        ("valid_loss", ax_loss, "valid", "-"),
        ("test_loss", ax_loss, "test", "--"),
        ("train_accuracy", ax_acc, "train (whole tracks)", "-"),
        ("valid_accuracy", ax_acc, "valid", "-"),
        ("test_accuracy", ax_acc, "test (not used for selection)", "--"),
    ):
        points = [(r["C"], r[key]) for r in history if key in r]
        if points:
            ax.plot(*zip(*points), style, marker="o", markersize=3, label=label)
    for ax, title in ((ax_loss, "loss (class-weighted)"), (ax_acc, "accuracy")):
        if selected_c is not None:
            ax.axvline(selected_c, color="grey", linestyle=":", label=f"chosen C = {selected_c:g}")
        ax.set_xscale("log")
        ax.set_xlabel("C (inverse L2 strength) of the logistic regression")
        ax.set_title(f"linear probe: {title} over its C grid")
        if ax.lines:
            ax.legend(fontsize="small")
    return fig


# --- tags -----------------------------------------------------------------------------------------
def tags_figure(per_tag: list[dict]) -> Figure:
    """Test ROC-AUC per tag, best first, as horizontal bars from chance (0.5), with the macro mean; a
    tag without positive test clips (no ROC-AUC) is listed at the bottom without a bar."""
    scored = sorted((t for t in per_tag if t["roc_auc"] is not None), key=lambda t: -t["roc_auc"])
    unscored = [t for t in per_tag if t["roc_auc"] is None]
    rows = scored + unscored
    fig = Figure(figsize=(7, max(3.0, 0.22 * len(rows) + 1.2)))
    ax = fig.subplots()
    y = np.arange(len(rows))
    values = [t["roc_auc"] if t["roc_auc"] is not None else 0.5 for t in rows]
    ax.barh(y, np.asarray(values) - 0.5, left=0.5, color=["tab:blue"] * len(scored) + ["lightgrey"] * len(unscored))
    ax.set_yticks(y, [f"{t['tag']} ({t['positives']})" for t in rows], fontsize=8 if len(rows) > 25 else 10)
    ax.invert_yaxis()
    ax.axvline(0.5, color="tab:red", linestyle="--", linewidth=1, label="chance 0.5")
    if scored:
        mean = float(np.mean([t["roc_auc"] for t in scored]))
        ax.axvline(mean, color="black", linewidth=1, label=f"macro mean {mean:.3f}")
    ax.set_xlim(min(0.4, min(values) - 0.02), 1.0)
    ax.set_xlabel("test ROC-AUC (positive test clips in brackets)")
    ax.set_title("per-tag ROC-AUC")
    ax.legend(fontsize="small", loc="lower right")
    return fig


def plot_tags(path: Path, per_tag: list[dict]) -> Path:
    return _save(tags_figure(per_tag), path)


# --- confusion ------------------------------------------------------------------------------------
def confusion_figure(
    confusion: np.ndarray, genres: list[str], *, title: str = "test confusion (rows normalised)"
) -> Figure:
    """Row-normalised confusion matrix with a colour bar and the counts in the cells, in a type size
    that shrinks with the number of classes but stays readable."""
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape, dtype=float), where=rows > 0)
    n = len(genres)
    size = max(4.5, 0.55 * n + 2.5)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= 30:
        fontsize = 11 if n <= 10 else 9 if n <= 20 else 8
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if share[i, j] > 0.5 else "black",
            )
        ax.set_xticks(range(n), genres, rotation=90)
        ax.set_yticks(range(n), genres)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig


def plot_confusion(
    path: Path, confusion: np.ndarray, genres: list[str], *, title: str = "test confusion (rows normalised)"
) -> Path:
    return _save(confusion_figure(confusion, genres, title=title), path)


# --- folds ----------------------------------------------------------------------------------------
FOLD_TITLES = {
    "accuracy": "test accuracy",
    "macro_f1": "test macro-F1",
    "roc_auc": "test macro ROC-AUC",
    "pr_auc": "test macro PR-AUC",
}


def folds_figure(
    rows: list[dict],
    mean: dict,
    std: dict,
    *,
    chance: float | None = None,
    metrics: tuple[str, str] = ("accuracy", "macro_f1"),
) -> Figure:
    """Per-fold test scores (accuracy and macro-F1, or ROC-AUC and PR-AUC) of the validation-selected
    checkpoints, with the mean ± std band, chance on the first (one class of K; 0.5 for ROC-AUC)
    dashed, and the legend below the axes."""
    folds = [r["fold"] for r in rows]
    fig = Figure(figsize=(max(7.0, 0.6 * len(folds) + 4), 4.8))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, metrics):
        key, title = f"test_{metric}", FOLD_TITLES.get(metric, metric)
        ax.bar(folds, [r[key] for r in rows], color="tab:blue", label="fold")
        if key in mean:
            m, s = mean[key], std[key]
            ax.axhline(m, color="black", label=f"mean {m:.3f} ± {s:.3f}")
            ax.axhspan(m - s, m + s, color="grey", alpha=0.2)
        if chance is not None and metric == metrics[0]:
            ax.axhline(chance, color="tab:red", linestyle="--", label=f"chance {chance:.3f}")
        ax.set_ylim(0, 1)
        ax.set_xticks(folds)
        ax.set_xlabel("fold")
        ax.set_title(title)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    return fig


def plot_folds(
    path: Path,
    rows: list[dict],
    mean: dict,
    std: dict,
    *,
    chance: float | None = None,
    metrics: tuple[str, str] = ("accuracy", "macro_f1"),
) -> Path:
    return _save(folds_figure(rows, mean, std, chance=chance, metrics=metrics), path)


# --- weights --------------------------------------------------------------------------------------
SCALE_NOTES = {
    "routes": "W is nearly scale-free (BatchNorm follows it): only its ratios mean anything, so each W is divided by the mean, "
    "and 1 is the uniform weighting.",
    "layers": "The layer weights are nearly scale-free (instance norm follows their sum): shown as shares of it, 1/layers "
    "being the uniform weighting.",
}


def weights_figure(
    route_weights: list[dict[str, float]] | dict[str, float], layer_weights: list[dict[str, float]] | dict[str, float]
) -> Figure:
    """The route weights W (paper Fig. 3), each divided by their mean, and the layer weights as shares of
    their sum, each against a dashed line at the uniform weighting (the scale-free baseline); a y axis
    fitted to the values, so weights of 0.98 and 1.01 look different; one panel when the store holds one
    layer. Several runs (folds, seeds): the bars are their mean, the whiskers their range and the dots
    each run. The caption speaks of the panels drawn only."""
    routes = route_weights if isinstance(route_weights, list) else [route_weights]  # one dict per run
    layers = layer_weights if isinstance(layer_weights, list) else [layer_weights]
    both = len(layers[0]) > 1 if layers else False
    fig = Figure(figsize=(10 if both else 5.5, 4.4))
    axes = fig.subplots(1, 2 if both else 1, squeeze=False)[0]
    ax_r = axes[0]
    names = list(routes[0])
    w = np.asarray([[r[n] for n in names] for r in routes], dtype=float)
    _bars(
        ax_r, names, w / w.mean(axis=1, keepdims=True), reference=1.0, color="tab:blue", title="route weights W / mean"
    )
    notes = [SCALE_NOTES["routes"]]
    if both:
        stored = list(layers[0])
        v = np.asarray([[layer[n] for n in stored] for layer in layers], dtype=float)
        _bars(
            axes[1],
            stored,
            v / v.sum(axis=1, keepdims=True),
            reference=1.0 / len(stored),
            color="tab:orange",
            title="layer weights, share of their sum",
        )
        axes[1].set_xlabel("stored layer")
        notes.append(SCALE_NOTES["layers"])
    runs = (
        f" Bars: the mean of {len(routes)} runs (folds or seeds); whiskers: their range; dots: each run."
        if len(routes) > 1
        else ""
    )
    fig.text(0.5, -0.02, " ".join(notes) + runs, ha="center", va="top", fontsize="small", wrap=True)
    return fig


def _bars(ax, names: list[str], values: np.ndarray, *, reference: float, color: str, title: str) -> None:
    """Bars from the uniform weighting to each weight (``values``: one row per run; the mean drawn, the
    runs' range as whiskers and each run as a dot when there are several): above it or below it, never
    a cropped bar whose length misleads."""
    mean = values.mean(axis=0)
    x = np.arange(len(names))
    ax.bar(x, mean - reference, bottom=reference, color=color)
    if len(values) > 1:
        ax.errorbar(
            x, mean, yerr=[mean - values.min(axis=0), values.max(axis=0) - mean], fmt="none", ecolor="black", capsize=4
        )
        for row in values:
            ax.plot(x, row, "o", color="black", markersize=3, alpha=0.6)
    ax.axhline(
        reference, color="black", linestyle="--", linewidth=1, label=f"uniform ({reference:.3g}, scale-free baseline)"
    )
    ax.set_xticks(x, names)
    spread = max(float(np.abs(values - reference).max()), 0.02 * reference)
    ax.set_ylim(reference - 1.4 * spread, reference + 1.4 * spread)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper right")


def plot_weights(
    path: Path,
    route_weights: dict[str, float] | list[dict[str, float]],
    layer_weights: dict[str, float] | list[dict[str, float]],
    formats: tuple[str, ...] = ("png",),
) -> Path:
    """Bar charts of the route weights W (paper Fig. 3) and the layer weights, of one run or several."""
    return save_figure(weights_figure(route_weights, layer_weights), path, formats)
