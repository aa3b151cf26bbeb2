"""Layer-wise probing (``mrnet-probe-layers``): the linear probe fitted on each stored layer alone.

The figure researchers draw to choose a layer of a self-supervised encoder, made from the stored
features without extracting again. Each track is read once, all its layers together; per layer its
whole-track statistics (``stats_pool``: every feature's mean and standard deviation over time, the
``--model linear`` probe's input) are standardised with the training tracks' mean and variance, and
the probe is fitted as ``mrnet-train --model linear --layer N`` fits it (train/probe.py:
``LogisticRegression`` with balanced class weights for every C of :data:`probe.GRID`, the one with the
best validation metric kept, ties to the lower validation loss, then the stronger regularisation). A
tag store gets one such regression per tag (one-vs-rest) and is scored by ROC-AUC. The test split
chooses nothing; its metric comes with the 95 % bootstrap interval over test tracks (train/stats.py).

With ``run``, MRNet's learned layer weights of that run (trained on the same store) go beside the
probe, as shares of their sum (the weights are nearly scale-free; train/plots.py draws them so too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.manifests.schema import class_weights
from mrnet.store.reader import FeatureStore
from mrnet.train import probe, stats
from mrnet.train.crops import track_targets
from mrnet.train.models.linear import stats_pool
from mrnet.train.render import model_name
from mrnet.train.runs import RunFolder, write_json
from mrnet.train.setup import MODEL_INPUT_FIELDS
from mrnet.train.splits import Splits, has_official_split, split_tracks, usable
from mrnet.train.tasks import HEADLINE, MULTI, label, show

FILES = ("layers.json", "layers.md", "layers.png")


class Progress:
    """What probing reports while it works (the command line shows it with rich bars; tests record it)."""

    def reading(self, tracks: int) -> None: ...

    def track(self) -> None: ...

    def fitting(self, layers: int) -> None: ...

    def layer(self, row: dict) -> None: ...


@dataclass(frozen=True)
class Part:
    """One split's pooled statistics, ``(tracks, layers, features)``, and its truth (label ids or multi-hot rows)."""

    x: np.ndarray
    y: np.ndarray


def statistics(store: FeatureStore, tracks: pl.DataFrame, progress: Progress) -> np.ndarray:
    """``(tracks, layers, 2 * channels * dim)``: each whole track's pooled statistics of each stored layer,
    read once per track (``store.read`` of all its layers); row ``l`` is ``stats_pool`` of layer ``l`` alone."""
    layers = len(store.provenance.layers)
    out = np.empty((tracks.height, layers, 2 * store.provenance.channels * store.provenance.dim), np.float32)
    with torch.no_grad():
        for i, key in enumerate(tracks["key"]):
            x = torch.from_numpy(store.read(key).astype(np.float32))[None]  # (1, channels, layers, T, dim)
            for layer in range(layers):
                out[i, layer] = stats_pool(x[:, :, layer : layer + 1])[0].numpy()
            progress.track()
    return out


def fit_layer(train: Part, valid: Part, classes: int, metric: str, weights: np.ndarray | None) -> dict:
    """Fit the probe on one layer's standardised statistics for each C; returns the validation-chosen
    fit's C, validation metric and loss, and a ``predict(z)`` giving probabilities."""
    z, zv = probe.standardize(train.x, valid.x)
    best: dict | None = None
    for c in probe.GRID:
        predict = _fit(c, z, train.y, classes, multilabel=weights is None)
        p = predict(zv)
        value = stats.metric(metric, valid.y, p)
        value = -math.inf if math.isnan(value) else value  # no tag of the validation split can be scored
        loss = _loss(p, valid.y, weights)
        if probe.improves(value, loss, best):
            best = {"C": c, "metric": value, "loss": loss, "predict": predict}
    assert best is not None
    return best


def _fit(c: float, z: np.ndarray, y: np.ndarray, classes: int, *, multilabel: bool):
    """The probe for one C: probabilities ``predict(z)``, softmax over classes or a sigmoid per tag."""
    if multilabel:
        tags = [_tag(c, z, y[:, t]) for t in range(y.shape[1])]
        return lambda zs: np.stack([t(zs) for t in tags], axis=1)
    coef, bias = probe.head(probe.logistic(c, z, y), classes)
    return lambda zs: torch.softmax(torch.from_numpy(zs @ coef.T + bias), dim=1).numpy()


def _tag(c: float, z: np.ndarray, y: np.ndarray):
    """One tag's logistic regression; a tag every (or no) training clip has is predicted at its constant rate."""
    if y.min() == y.max():
        return lambda zs: np.full(len(zs), float(y[0]))
    clf = probe.logistic(c, z, y.astype(np.int64))
    return lambda zs: clf.predict_proba(zs)[:, 1]


def _loss(p: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> float:
    """The validation loss the run's probe breaks ties with: class-weighted cross-entropy (genres), binary cross-entropy (tags)."""
    probs = torch.from_numpy(np.asarray(p, dtype=np.float64))
    if weights is None:
        return float(F.binary_cross_entropy(probs.clamp(1e-12, 1 - 1e-12), torch.from_numpy(y.astype(np.float64))))
    return float(F.nll_loss(probs.clamp_min(1e-12).log(), torch.from_numpy(y), weight=torch.from_numpy(weights)))


def _part(data: np.ndarray, rows: slice, layer: int, y: np.ndarray) -> Part:
    return Part(data[rows, layer].astype(np.float64), y[rows])


def probe_layers(
    store: FeatureStore, *, fold: int | None = None, run: Path | None = None, progress: Progress | None = None
) -> dict:
    """The linear probe on each stored layer of ``store``: one row per layer (its number, the chosen C,
    validation metric, test metrics with 95 % intervals) and, with ``run``, that run's layer weights.
    ``fold``: None takes the official split (or, with ``run``, the run's split; a store with folds only: fold 0)."""
    progress = progress or Progress()
    prov, task = store.provenance, store.provenance.task
    weights_of_run = run_weights(run, store) if run is not None else None
    if fold is None and weights_of_run is not None:
        fold = weights_of_run["fold"]
    if fold is None and not has_official_split(usable(store.tracks)):
        fold = 0
    splits = split_tracks(store.tracks, fold=fold, where=store.location.url)
    labels = store.genres["name"].to_list()
    metrics = HEADLINE[task]
    parts = splits.parts()
    tracks = pl.concat([parts["train"], parts["valid"], parts["test"]], how="vertical_relaxed")
    progress.reading(tracks.height)
    data = statistics(store, tracks, progress)
    if task == MULTI:
        y, weights = np.stack(track_targets(tracks, labels)).astype(np.int64), None
    else:
        y = tracks["label"].to_numpy().astype(np.int64)
        weights = np.asarray(class_weights(splits.train, len(labels)), dtype=np.float64)
    a, b = splits.train.height, splits.train.height + splits.valid.height
    rows = []
    progress.fitting(len(prov.layers))
    for position, number in enumerate(prov.layers):
        train, valid, test = (_part(data, s, position, y) for s in (slice(0, a), slice(a, b), slice(b, None)))
        best = fit_layer(train, valid, len(labels), metrics[0], weights)
        p = best["predict"](probe.standardize(train.x, test.x)[1])
        row = {
            "layer": number,
            "position": position,
            "C": best["C"],
            "valid": {metrics[0]: best["metric"], "loss": best["loss"]},
            "test": {name: stats.metric(name, test.y, p) for name in metrics},
            "interval": {name: list(stats.interval(test.y, p, name)) for name in metrics},
        }
        rows.append(row)
        progress.layer(row)
    return _result(store, splits, rows, metrics, weights_of_run)


def _result(store: FeatureStore, splits: Splits, rows: list[dict], metrics: tuple, run: dict | None) -> dict:
    prov = store.provenance
    best = max(rows, key=lambda r: (r["test"][metrics[0]], -r["position"]))
    return {
        "store": store.location.url,
        "feature": prov.feature,
        "model": prov.model,
        "model_revision": prov.model_revision,
        "task": prov.task,
        "metric": metrics[0],
        "metrics": list(metrics),
        "classes": len(store.genres),
        "chance": 0.5 if prov.task == MULTI else 1 / len(store.genres),
        "split": splits.description,
        "sizes": splits.sizes(),
        "grid": list(probe.GRID),
        "interval_level": stats.LEVEL,
        "layers": rows,
        "best_layer": best["layer"],
        "one_layer": len(rows) == 1,
        "run": run,
    }


# --- a run's learned layer weights -----------------------------------------------------------------


def run_weights(path: Path, store: FeatureStore) -> dict:
    """MRNet's learned layer weights of run ``path`` (a run folder, or a ``--folds all`` folder: each
    fold's), refusing a run on another store, an unfinished run and a model without layer weights."""
    folder = RunFolder(path)
    folds = sorted(p for p in path.glob("fold-*") if (p / "report.json").is_file())
    if folder.report_file.is_file() or not folds:
        if not folder.report_file.is_file():
            folder.config()  # a folder that is not a run says so, before "not finished"
        reports, info = [folder.report()], folder.store_info()
    else:
        reports, info = [RunFolder(p).report() for p in folds], RunFolder(folds[0]).store_info()
    _check_store(path, info, store)
    weights: list[dict] = [r["layer_weights"] for r in reports if r.get("layer_weights")]
    if len(weights) < len(reports):
        model = model_name(reports[0].get("config", {}))
        raise UserError(
            f"--run {path}: a --model {model} run learns no layer weights (MRNet does). "
            "Name an MRNet run on this store, or leave --run out."
        )
    stored = [str(n) for n in store.provenance.layers]
    shares = []
    for w in weights:
        total = sum(w.values())
        shares.append({k: v / total if total else math.nan for k, v in w.items()})
    config = reports[0].get("config", {})
    return {
        "path": str(path),
        "runs": len(reports),
        "fold": config.get("fold") if len(reports) == 1 else None,
        "layers": [k for k in stored if k in weights[0]],
        "layer_weights": weights,
        "shares": shares,
    }


def _check_store(path: Path, info: dict, store: FeatureStore) -> None:
    recorded, now = info.get("provenance", {}), store.provenance.to_json()
    reasons = [
        f"{name}: run has {recorded.get(name)!r}, store has {now.get(name)!r}"
        for name in MODEL_INPUT_FIELDS
        if recorded.get(name) != now.get(name)
    ]
    if info.get("genres") != store.genres["name"].to_list():
        reasons.append("its genres (or tags) differ")
    if reasons:
        raise UserError(
            f"--run {path} was trained on {info.get('url')}, not on {store.location.url}:\n  - "
            + "\n  - ".join(reasons)
            + "\nName a run trained on this store, or leave --run out."
        )


# --- what is written -----------------------------------------------------------------------------


def markdown(result: dict) -> str:
    """layers.md: one row per stored layer, the best layer named, and what the numbers are."""
    first, second = result["metrics"]
    run = result["run"]
    head = f"| layer | test {label(first)} | 95 % interval | test {label(second)} | valid {label(first)} | C |"
    rule = "|---:|---:|---|---:|---:|---:|"
    if run:
        head, rule = head + " MRNet layer weight (share) |", rule + "---:|"
    lines = [f"# Linear probe per layer: {result['store']}", "", head, rule]
    for row in result["layers"]:
        low, high = row["interval"][first]
        cells = [
            str(row["layer"])
            + (" **(best)**" if row["layer"] == result["best_layer"] and len(result["layers"]) > 1 else ""),
            show(first, row["test"][first]),
            f"{show(first, low)} – {show(first, high)}",
            show(second, row["test"][second]),
            show(first, row["valid"][first]),
            f"{row['C']:g}",
        ]
        if run:
            share = [s.get(str(row["layer"])) for s in run["shares"]]
            cells.append(f"{np.mean(share):.3f}" if None not in share else "not used")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", notes(result)]
    return "\n".join(lines) + "\n"


def notes(result: dict) -> str:
    """What the table shows, in words (also printed under the console table)."""
    first = label(result["metric"])
    sizes = result["sizes"]
    text = (
        f"The `--model linear` probe (mean and standard deviation over time of each feature, logistic regression) "
        f"fitted on each stored layer alone; C chosen on validation from {len(result['grid'])} values, "
        f"{result['split']} ({sizes['train']} train, {sizes['valid']} valid, {sizes['test']} test tracks); "
        f"the test {first} with its 95 % bootstrap interval over the test tracks. "
        f"Chance: {show(result['metric'], result['chance'])}."
    )
    if result["one_layer"]:
        text += (
            f" This store holds one layer ({result['feature']} features), so the table has one row; a store of "
            "every hidden state of an encoder (`mrnet-extract ... --features ssl`) gives one row per layer."
        )
    if result["run"]:
        runs = result["run"]["runs"]
        text += (
            f" MRNet layer weights: run {result['run']['path']}"
            + (f" (mean over its {runs} folds)" if runs > 1 else "")
            + ", each weight as a share of their sum (they are nearly scale-free)."
        )
    return text


def write(result: dict, out: Path, formats: tuple[str, ...] = ("png",)) -> Path:
    """layers.json, layers.md and layers.png (and the other ``formats``) in ``out``; returns the PNG's path."""
    from mrnet.train.layer_probe_figure import layer_probe_figure
    from mrnet.train.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "layers.json", result)
    (out / "layers.md").write_text(markdown(result))
    return save_figure(layer_probe_figure(result), out / "layers.png", formats)
