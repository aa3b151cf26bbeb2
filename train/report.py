"""The final report of a run: ``report.json`` (numbers), ``report.md`` (for people, see ``render.py``), plots.

The headline test numbers come from the checkpoint chosen on the validation split: accuracy and
macro-F1 for genres, macro ROC-AUC and PR-AUC for tags (``tasks.HEADLINE``). The authors' protocol
(best epoch chosen on the test set) is reported beside them, labelled optimistic.

>>> rows = [{"fold": 0, "test_accuracy": 0.9, "test_macro_f1": 0.8}, {"fold": 1, "test_accuracy": 1.0, "test_macro_f1": 0.9}]
>>> agg = aggregate(rows)
>>> agg["mean"]["test_accuracy"], round(agg["std"]["test_accuracy"], 4)
(0.95, 0.0707)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from mrnet.core.errors import UserError
from mrnet.train import events, fingerprint, predictions, stats
from mrnet.train.config import TrainConfig
from mrnet.train.evaluate import mean_std, scores
from mrnet.train.models import count_parameters, is_probe
from mrnet.train.render import OPTIMISTIC_NOTE, SELECTION_NOTE, ci, markdown, pct, summary_table  # noqa: F401 (re-exported)
from mrnet.train.runs import RunFolder, write_json
from mrnet.train.tasks import HEADLINE, MULTI, SINGLE, task_of


def optimistic(history: list[dict], task: str = SINGLE) -> dict | None:
    """The epoch with the best test headline metric (earliest on ties), as the authors choose it.

    >>> optimistic([{"epoch": 1, "test_accuracy": 0.5, "test_macro_f1": 0.4}, {"epoch": 2, "test_accuracy": 0.7, "test_macro_f1": 0.6}])["epoch"]
    2
    """
    first, second = HEADLINE[task]
    tested = [r for r in history if f"test_{first}" in r]
    if not tested:
        return None
    best = max(tested, key=lambda r: (r[f"test_{first}"], -r["epoch"]))
    out = {
        "epoch": best["epoch"],
        first: best[f"test_{first}"],
        second: best.get(f"test_{second}"),
        "note": OPTIMISTIC_NOTE,
    }
    if "C" in best:  # the linear probe's grid point
        out |= {"C": best["C"], "note": OPTIMISTIC_NOTE.replace("best epoch", "best C")}
    return out


def training_seconds(history: list[dict]) -> float:
    """The training time of a run's ``metrics.jsonl`` rows: the sum of their ``seconds``. A linear probe
    written before its rows held each fit's own time has cumulative ``seconds`` (no ``elapsed``): the last one.

    >>> training_seconds([{"C": 0.1, "seconds": 2.0}, {"C": 1.0, "seconds": 3.0}])
    3.0
    >>> training_seconds([{"epoch": 1, "seconds": 2.0}, {"epoch": 2, "seconds": 3.0}])
    5.0
    """
    if history and all("C" in r for r in history) and not any("elapsed" in r for r in history):
        return float(max(r.get("seconds", 0.0) for r in history))
    return float(sum(r.get("seconds", 0.0) for r in history))


def build(
    *,
    cfg: TrainConfig,
    run: RunFolder,
    store: dict,
    history: list[dict],
    best: dict,
    test: dict,
    model: torch.nn.Module,
    class_weights: list[float] | None,
    stopped: int | None = None,
) -> dict:
    """The report of one finished run: ``best`` is checkpoints/best.pt, ``test`` its evaluation on the test split."""
    task = task_of(store)
    first, second = HEADLINE[task]
    names = store["genres"]
    if task == MULTI:
        per_tag = [
            {
                "tag": t,
                "roc_auc": test["roc_auc_per_tag"][i],
                "pr_auc": test["pr_auc_per_tag"][i],
                "positives": test["positives"][i],
            }
            for i, t in enumerate(names)
        ]
        tested = {
            **{k: test[k] for k in ("loss", "roc_auc", "pr_auc", "precision", "recall", "f1", "macro_f1", "threshold")},
            "per_tag": per_tag,
        }
        labelled = {"tags": names, "pos_weight": dict(zip(names, class_weights)) if class_weights else None}
    else:
        per_class = [
            {
                "genre": g,
                "precision": test["precision"][i],
                "recall": test["recall"][i],
                "f1": test["f1"][i],
                "support": test["support"][i],
            }
            for i, g in enumerate(names)
        ]
        tested = {
            **{k: test[k] for k in ("loss", "accuracy", "macro_f1")},
            "per_class": per_class,
            "confusion": test["confusion"],
        }
        labelled = {"genres": names, "class_weights": dict(zip(names, class_weights or []))}
    if (
        "probabilities" in test
    ):  # evaluate(keep=True): each headline number gets its bootstrap interval over test tracks
        tested["interval"] = stats.intervals(test["truth"], test["probabilities"], HEADLINE[task])
    valid_keys = ("loss", first, second, "threshold") if task == MULTI else ("loss", first, second)
    mrnet: Any = model  # MRNet's route and layer weights, read where the model has them
    return {
        "run": str(run.path),
        "store": store["url"],
        "dataset": store["provenance"].get("dataset", ""),
        "feature": store["provenance"]["feature"],
        "split": store["split"],
        "sizes": store["sizes"],
        "config": cfg.to_json(),
        "model": {
            "name": cfg.model,
            "parameters": count_parameters(model),
            "parameters_without_head": count_parameters(model, head=False),
            "routes": list(getattr(model, "route_names", ())),
            "variant": getattr(model.cfg, "variant", None),
        },
        "normalize": cfg.normalize or "instance",
        "task": task,
        "epochs_trained": len(history),
        "training_seconds": round(training_seconds(history), 1),
        "selection": {
            "split": "valid",
            "metric": cfg.select_metric,
            "epoch": best["epoch"],
            "stopped_early": stopped,
            "note": SELECTION_NOTE,
        },
        "valid": {k: best["valid"].get(f"valid_{k}") for k in valid_keys},
        "test": tested,
        "optimistic": optimistic(history, task),
        **labelled,
        "route_weights": dict(zip(mrnet.route_names, mrnet.route_weights.detach().float().cpu().tolist()))
        if hasattr(model, "route_weights")
        else {},
        "layer_weights": (
            {str(layer): w for layer, w in zip(store["layers"], mrnet.layer_weights.detach().float().cpu().tolist())}
            if hasattr(model, "layer_weights")
            else {}
        ),
    }


def write(run: RunFolder, report: dict, formats: tuple[str, ...] = ("png",)) -> None:
    """report.json, report.md, fingerprint.json and the plots (in each of ``formats``) of one run."""
    from mrnet.train import plots  # Matplotlib loads when a report is drawn, not when training starts

    report["probe"] = probe_for(run.path, report)
    plots.plot_run(run.plots, report, run.metrics(), formats)
    fingerprint.write(run.path)
    write_json(run.report_file, report)
    (run.path / "report.md").write_text(markdown(report))


def fold_row(k: int, report: dict) -> dict:
    first, second = HEADLINE[task_of(report)]
    opt = report["optimistic"] or {}
    return {
        "fold": k,
        "best_epoch": report["selection"]["epoch"],
        f"valid_{first}": report["valid"][first],
        f"test_{first}": report["test"][first],
        f"test_{second}": report["test"][second],
        f"optimistic_{first}": opt.get(first),
        f"optimistic_{second}": opt.get(second),
        "interval": report["test"].get("interval"),  # the fold's own bootstrap intervals over its test tracks
    }


def aggregate(rows: list[dict]) -> dict:
    """Mean and sample standard deviation over folds of each number of the rows that every fold has."""
    mean, std = {}, {}
    for key in [k for k in (rows[0] if rows else {}) if k not in ("fold", "best_epoch", "interval")]:
        values = [r[key] for r in rows if r.get(key) is not None]
        if values and len(values) == len(rows):
            mean[key], std[key] = mean_std(values)
    return {"folds": rows, "n": len(rows), "mean": mean, "std": std}


def write_aggregate(run: RunFolder, fold_reports: list[dict]) -> dict:
    """The top-level report of a ``--folds all`` run (and its TensorBoard result, train/events.py)."""
    first = fold_reports[0]
    task = task_of(first)
    report = {
        "run": str(run.path),
        "store": first["store"],
        "dataset": first["dataset"],
        "feature": first["feature"],
        "task": task,
        "split": f"{len(fold_reports)}-fold cross-validation",
        "config": {**first["config"], "fold": None, "all_folds": True},
        "selection": first["selection"] | {"epoch": None},
        "training_seconds": round(sum(r.get("training_seconds", 0.0) for r in fold_reports), 1),
        **({"tags": first["tags"]} if task == MULTI else {"genres": first["genres"]}),
        **aggregate([fold_row(k, r) for k, r in enumerate(fold_reports)]),
    }
    if (
        task == SINGLE
    ):  # every track is in exactly one test fold, so the folds' test confusions add up to one over the whole dataset
        confusion = np.sum([np.asarray(r["test"]["confusion"]) for r in fold_reports], axis=0)
        report["test_all_folds"] = {**scores(confusion), "confusion": confusion.tolist()}
    every = pooled([run.fold(k).path / predictions.FILE for k in range(len(fold_reports))], task)
    if every is not None:
        report["test_all_folds"] = {**report.get("test_all_folds", {}), **every}
    write_folds(run, report)
    events.log_result(run.path, report, step=0)  # the folds' mean, beside each fold's own event folder
    return report


def pooled(files: list[Path], task: str) -> dict | None:
    """The headline numbers of every fold's test predictions together (each track once, by its own fold's
    model) with their bootstrap intervals; None when a fold has no predictions.parquet."""
    if not files or not all(Path(f).is_file() for f in files):
        return None
    frame = pl.concat([predictions.read(f).filter(pl.col("split") == "test") for f in files], how="vertical")
    truth, probs = predictions.truth(frame), predictions.probabilities(frame)
    names = HEADLINE[task]
    return {
        **{m: stats.metric(m, truth, probs) for m in names},
        "interval": stats.intervals(truth, probs, names),
        "tracks": frame.height,
    }


def write_folds(run: RunFolder, report: dict, formats: tuple[str, ...] = ("png",)) -> None:
    """report.json, report.md, fingerprint.json and the plots (in each of ``formats``) of a ``--folds all`` run."""
    from mrnet.train import plots

    report["probe"] = probe_for(run.path, report)
    task = task_of(report)
    chance = (
        0.5 if task == MULTI else 1 / len(report["genres"])
    )  # ROC-AUC of a random score; accuracy of one class of K
    plots.save_figure(
        plots.folds_figure(report["folds"], report["mean"], report["std"], chance=chance, metrics=HEADLINE[task]),
        run.plots / "folds.png",
        formats,
    )
    if "confusion" in report.get("test_all_folds", {}):
        plots.save_figure(
            plots.confusion_figure(
                np.asarray(report["test_all_folds"]["confusion"]),
                report["genres"],
                title="test confusion, all folds (every track once; rows normalised)",
            ),
            run.plots / "confusion.png",
            formats,
        )
    folds = [run.fold(k).report() for k in range(report["n"]) if run.fold(k).finished]
    if folds and all(f.get("route_weights") for f in folds):  # the weights of every fold: their mean and spread
        plots.plot_weights(
            run.plots / "weights.png", [f["route_weights"] for f in folds], [f["layer_weights"] for f in folds], formats
        )
    if (run.path / "config.json").is_file():
        fingerprint.write(run.path)
    write_json(run.report_file, report)
    (run.path / "report.md").write_text(markdown(report))


# --- the linear probe beside a run -----------------------------------------------------------------


def probe_for(path: Path, report: dict) -> dict | None:
    """The linear probe to read run ``path`` against: among the run folders beside it (the same parent
    folder), the finished ``--model linear`` runs on the same store (equal provenance and genres) and
    the same split (equal split description and sizes; for ``--folds all``, every fold of as many
    folds), the one that finished last. None for a probe itself, or when there is none.
    """
    if is_probe(report["config"].get("model", "mrnet")) or task_of(report) == MULTI or not path.parent.is_dir():
        return None  # no probe for a probe, nor for tags (it is a multi-class regression)
    mine = _store_of(Path(path))
    found = []
    for other in sorted(Path(path).parent.iterdir()):
        if other == Path(path) or not (other / "report.json").is_file() or not (other / "config.json").is_file():
            continue
        try:
            theirs = json.loads((other / "report.json").read_text())
            if not is_probe(theirs["config"].get("model")) or _store_of(other) != mine:
                continue
            if "folds" in report:
                if "folds" not in theirs or theirs["n"] != report["n"]:
                    continue
                row = {
                    "test_accuracy": theirs["mean"]["test_accuracy"],
                    "test_macro_f1": theirs["mean"]["test_macro_f1"],
                    "test_accuracy_std": theirs["std"]["test_accuracy"],
                }
            else:
                if "folds" in theirs or (theirs["split"], theirs["sizes"]) != (report["split"], report["sizes"]):
                    continue
                row = {"test_accuracy": theirs["test"]["accuracy"], "test_macro_f1": theirs["test"]["macro_f1"]}
        except (OSError, ValueError, KeyError, TypeError, UserError):
            continue  # not a readable finished run: not a probe to compare with
        found.append(((other / "report.json").stat().st_mtime, {"run": str(other), **row}))
    return max(found, key=lambda f: f[0])[1] if found else None


def _store_of(path: Path) -> tuple | None:
    """What identifies a run's store: its provenance and genre names (store.json of the run or its first fold)."""
    for candidate in (path / "store.json", path / "fold-0" / "store.json"):
        if candidate.is_file():
            info = RunFolder(candidate.parent).store_info()  # a damaged store.json is named
            return json.dumps(info.get("provenance"), sort_keys=True), tuple(info.get("genres", ()))
    return None


def rerender(path: Path, formats: tuple[str, ...] = ("png",)) -> dict | None:
    """Rewrite report.md and the plots (in each of ``formats``) of a finished run (or of each fold); None for an
    unfinished one. A run from before intervals gets them from its predictions.parquet, if it has one."""
    from mrnet.train import plots

    run = RunFolder(path)
    if not run.finished:
        plots.plot_curves(run.plots / "curves.png", run.metrics(), selected=None)
        return None
    report = run.report()
    if "folds" in report:
        for k in range(report["n"]):
            rerender(run.fold(k).path, formats)
        every = pooled([run.fold(k).path / predictions.FILE for k in range(report["n"])], task_of(report))
        if every is not None:
            report["test_all_folds"] = {**report.get("test_all_folds", {}), **every}
        write_folds(run, report, formats)
    else:
        if "interval" not in report["test"] and (run.path / predictions.FILE).is_file():
            kept = predictions.read(run.path / predictions.FILE).filter(pl.col("split") == "test")
            report["test"]["interval"] = stats.intervals(
                predictions.truth(kept), predictions.probabilities(kept), HEADLINE[task_of(report)]
            )
        write(run, report, formats)
    return report
