"""The final report of a run: ``report.json`` (numbers), ``report.md`` (for people), plots, a summary table.

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
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from mrnet.train import plots
from mrnet.train.config import TrainConfig, model_options_of
from mrnet.train.evaluate import mean_std, scores
from mrnet.train.models import count_parameters, is_probe, title
from mrnet.train.models.mrnet import MRNetConfig
from mrnet.train.runs import RunFolder, write_json
from mrnet.train.tasks import HEADLINE, MULTI, SINGLE, label, show, task_of

SELECTION_NOTE = "checkpoint chosen on the validation split; the test split chose nothing"
OPTIMISTIC_NOTE = "best epoch chosen on the test set, as the authors' script does: optimistic, not an estimate of accuracy on new data"


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
    return {"epoch": best["epoch"], first: best[f"test_{first}"], second: best.get(f"test_{second}"), "note": OPTIMISTIC_NOTE}


def build(*, cfg: TrainConfig, run: RunFolder, store: dict, history: list[dict], best: dict, test: dict,
          model: torch.nn.Module, class_weights: list[float] | None, stopped: int | None = None) -> dict:
    """The report of one finished run: ``best`` is checkpoints/best.pt, ``test`` its evaluation on the test split."""
    task = task_of(store)
    first, second = HEADLINE[task]
    names = store["genres"]
    if task == MULTI:
        per_tag = [{"tag": t, "roc_auc": test["roc_auc_per_tag"][i], "pr_auc": test["pr_auc_per_tag"][i], "positives": test["positives"][i]}
                   for i, t in enumerate(names)]
        tested = {**{k: test[k] for k in ("loss", "roc_auc", "pr_auc", "precision", "recall", "f1", "macro_f1", "threshold")}, "per_tag": per_tag}
        labelled = {"tags": names, "pos_weight": dict(zip(names, class_weights)) if class_weights else None}
    else:
        per_class = [{"genre": g, "precision": test["precision"][i], "recall": test["recall"][i], "f1": test["f1"][i],
                      "support": test["support"][i]} for i, g in enumerate(names)]
        tested = {**{k: test[k] for k in ("loss", "accuracy", "macro_f1")}, "per_class": per_class, "confusion": test["confusion"]}
        labelled = {"genres": names, "class_weights": dict(zip(names, class_weights or []))}
    valid_keys = ("loss", first, second, "threshold") if task == MULTI else ("loss", first, second)
    return {
        "run": str(run.path),
        "store": store["url"],
        "dataset": store["provenance"].get("dataset", ""),
        "feature": store["provenance"]["feature"],
        "split": store["split"],
        "sizes": store["sizes"],
        "config": cfg.to_json(),
        "model": {"name": cfg.model, "parameters": count_parameters(model), "parameters_without_head": count_parameters(model, head=False),
                  "routes": list(getattr(model, "route_names", ())), "variant": getattr(model.cfg, "variant", None)},
        "normalize": cfg.normalize or "instance",
        "task": task,
        "epochs_trained": len(history),
        "training_seconds": round(sum(r.get("seconds", 0.0) for r in history), 1),
        "selection": {"split": "valid", "metric": cfg.select_metric, "epoch": best["epoch"], "stopped_early": stopped, "note": SELECTION_NOTE},
        "valid": {k: best["valid"].get(f"valid_{k}") for k in valid_keys},
        "test": tested,
        "optimistic": optimistic(history, task),
        **labelled,
        "route_weights": dict(zip(model.route_names, model.route_weights.detach().float().cpu().tolist())) if hasattr(model, "route_weights") else {},
        "layer_weights": ({str(layer): w for layer, w in zip(store["layers"], model.layer_weights.detach().float().cpu().tolist())}
                          if hasattr(model, "layer_weights") else {}),
    }


def write(run: RunFolder, report: dict) -> None:
    """report.json, report.md and the plots of one run."""
    report["probe"] = probe_for(run.path, report)
    plots.plot_run(run.plots, report, run.metrics())
    write_json(run.report_file, report)
    (run.path / "report.md").write_text(markdown(report))


def fold_row(k: int, report: dict) -> dict:
    first, second = HEADLINE[task_of(report)]
    opt = report["optimistic"] or {}
    return {"fold": k, "best_epoch": report["selection"]["epoch"], f"valid_{first}": report["valid"][first],
            f"test_{first}": report["test"][first], f"test_{second}": report["test"][second],
            f"optimistic_{first}": opt.get(first), f"optimistic_{second}": opt.get(second)}


def aggregate(rows: list[dict]) -> dict:
    """Mean and sample standard deviation over folds of each number of the rows that every fold has."""
    mean, std = {}, {}
    for key in [k for k in (rows[0] if rows else {}) if k not in ("fold", "best_epoch")]:
        values = [r.get(key) for r in rows]
        if values and all(v is not None for v in values):
            mean[key], std[key] = mean_std(values)
    return {"folds": rows, "n": len(rows), "mean": mean, "std": std}


def write_aggregate(run: RunFolder, fold_reports: list[dict]) -> dict:
    """The top-level report of a ``--folds all`` run."""
    first = fold_reports[0]
    task = task_of(first)
    report = {"run": str(run.path), "store": first["store"], "dataset": first["dataset"], "feature": first["feature"], "task": task,
              "split": f"{len(fold_reports)}-fold cross-validation", "config": {**first["config"], "fold": None, "all_folds": True},
              "selection": first["selection"] | {"epoch": None},
              "training_seconds": round(sum(r.get("training_seconds", 0.0) for r in fold_reports), 1),
              **({"tags": first["tags"]} if task == MULTI else {"genres": first["genres"]}),
              **aggregate([fold_row(k, r) for k, r in enumerate(fold_reports)])}
    if task == SINGLE:  # every track is in exactly one test fold, so the folds' test confusions add up to one over the whole dataset
        confusion = np.sum([np.asarray(r["test"]["confusion"]) for r in fold_reports], axis=0)
        report["test_all_folds"] = {**scores(confusion), "confusion": confusion.tolist()}
    write_folds(run, report)
    return report


def write_folds(run: RunFolder, report: dict) -> None:
    """report.json, report.md and the plots of a ``--folds all`` run."""
    report["probe"] = probe_for(run.path, report)
    task = task_of(report)
    chance = 0.5 if task == MULTI else 1 / len(report["genres"])  # ROC-AUC of a random score; accuracy of one class of K
    plots.plot_folds(run.plots / "folds.png", report["folds"], report["mean"], report["std"], chance=chance, metrics=HEADLINE[task])
    if "test_all_folds" in report:
        plots.plot_confusion(run.plots / "confusion.png", np.asarray(report["test_all_folds"]["confusion"]), report["genres"],
                             title="test confusion, all folds (every track once; rows normalised)")
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
                row = {"test_accuracy": theirs["mean"]["test_accuracy"], "test_macro_f1": theirs["mean"]["test_macro_f1"],
                       "test_accuracy_std": theirs["std"]["test_accuracy"]}
            else:
                if "folds" in theirs or (theirs["split"], theirs["sizes"]) != (report["split"], report["sizes"]):
                    continue
                row = {"test_accuracy": theirs["test"]["accuracy"], "test_macro_f1": theirs["test"]["macro_f1"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a readable finished run: not a probe to compare with
        found.append(((other / "report.json").stat().st_mtime, {"run": str(other), **row}))
    return max(found, key=lambda f: f[0])[1] if found else None


def _store_of(path: Path) -> tuple | None:
    """What identifies a run's store: its provenance and genre names (store.json of the run or its first fold)."""
    for candidate in (path / "store.json", path / "fold-0" / "store.json"):
        if candidate.is_file():
            info = json.loads(candidate.read_text())
            return json.dumps(info.get("provenance"), sort_keys=True), tuple(info.get("genres", ()))
    return None


# --- rendering ----------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    """``0.917 -> '91.7 %'``; ``None -> 'n/a'``."""
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _mrnet_shape(options: dict) -> str:
    """``paper variant, without H, C = 512, ``: MRNet's options (its config's defaults where not given)."""
    defaults = {f.name: f.default for f in fields(MRNetConfig)}
    variant, width, drop = (options.get(k, defaults[k]) for k in ("variant", "width", "drop_routes"))
    without = f", without {', '.join(drop)}" if drop else ""
    return f"{variant} variant{without}, C = {width}, "


def markdown(report: dict) -> str:
    """report.md: the headline, the optimistic number labelled as such, per-class (or per-tag) scores,
    the confusion matrix (genres), the learned weights."""
    if "folds" in report:
        return _markdown_folds(report)
    cfg, sel, test, opt = report["config"], report["selection"], report["test"], report["optimistic"]
    first, second = HEADLINE[task_of(report)]
    name = cfg.get("model", "mrnet")
    shape = _mrnet_shape(model_options_of(cfg)) if name == "mrnet" else ""
    stopped = f", stopped early (--patience {cfg.get('patience')})" if sel.get("stopped_early") else ""
    lines = [
        f"# {title(name)} on {report['dataset'] or report['store']}",
        "",
        f"- store: `{report['store']}` ({report['feature']}, {task_of(report)}); {report['split']}; "
        + " / ".join(f"{n} {name}" for name, n in report["sizes"].items()) + " tracks",
        f"- model: {name}, {shape}{report['model']['parameters']:,} parameters; input normalisation {report.get('normalize', 'instance')}; "
        f"preset {cfg['preset']}, {report['epochs_trained']} epochs{stopped}, {_duration(report.get('training_seconds'))}, seed {cfg['seed']}",
        "",
        f"**Test {label(first)} {show(first, test[first])}, {label(second)} {show(second, test[second])}** "
        f"(epoch {sel['epoch']}, {sel['note']}; selected on validation {sel['metric']}).",
        "",
    ]
    if opt:
        lines += [f"Optimistic: {label(first)} {show(first, opt[first])}, {label(second)} {show(second, opt[second])} at epoch {opt['epoch']} ({opt['note']}).", ""]
    probe = report.get("probe")
    if probe:
        lines += [f"Linear probe on the same store and split: test accuracy {pct(probe['test_accuracy'])}, macro-F1 "
                  f"{probe['test_macro_f1']:.3f} (`{probe['run']}`).", ""]
    if task_of(report) == MULTI:
        lines += [f"At the threshold chosen on validation ({test['threshold']:.2f}): precision {test['precision']:.3f}, recall "
                  f"{test['recall']:.3f}, F1 {test['f1']:.3f} (micro), macro-F1 {test['macro_f1']:.3f}.", "",
                  "## Per tag (test)", "", "| tag | ROC-AUC | PR-AUC | positive clips |", "|---|---|---|---|"]
        lines += [f"| {t['tag']} | {show('roc_auc', t['roc_auc'])} | {show('pr_auc', t['pr_auc'])} | {t['positives']} |" for t in test["per_tag"]]
        figures = "![curves](plots/curves.png) ![tags](plots/tags.png)"
    else:
        lines += ["## Per class (test)", "", "| genre | precision | recall | F1 | tracks |", "|---|---|---|---|---|"]
        lines += [f"| {c['genre']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |" for c in test["per_class"]]
        genres = report["genres"]
        lines += ["", "## Confusion matrix (test; rows true, columns predicted)", "", "| | " + " | ".join(genres) + " |",
                  "|---" * (len(genres) + 1) + "|"]
        lines += [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in zip(genres, test["confusion"])]
        figures = "![curves](plots/curves.png) ![confusion](plots/confusion.png)"
    if report["route_weights"]:
        lines += ["", "## Learned weights", "", "| route | W |", "|---|---|"]
        lines += [f"| {r} | {w:.3f} |" for r, w in report["route_weights"].items()]
        lines += ["", "| layer | weight |", "|---|---|"] + [f"| {k} | {w:.3f} |" for k, w in report["layer_weights"].items()]
        figures += " ![weights](plots/weights.png)"
    lines += ["", figures, ""]
    return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    """``5400 -> '1.5 h of training'``; the epochs' own time, evaluation included, start-up and final test not."""
    if seconds is None:
        return "training time not recorded"
    return f"{seconds / 3600:.1f} h of training" if seconds >= 3600 else f"{seconds / 60:.1f} min of training"


def _markdown_folds(report: dict) -> str:
    mean, std = report["mean"], report["std"]
    first, second = HEADLINE[task_of(report)]
    name = title(report["config"].get("model", "mrnet"))
    lines = [f"# {name} on {report['dataset'] or report['store']}: {report['split']}", "",
             f"**Test {label(first)} {show(first, mean[f'test_{first}'])} ± {show(first, std[f'test_{first}'])}, "
             f"{label(second)} {show(second, mean[f'test_{second}'])} ± {show(second, std[f'test_{second}'])}** (mean ± sample std over "
             f"{report['n']} folds; each fold's {SELECTION_NOTE}; {_duration(report.get('training_seconds'))} in all).", ""]
    if f"optimistic_{first}" in mean:
        lines += [f"Optimistic: {label(first)} {show(first, mean[f'optimistic_{first}'])} ± {show(first, std[f'optimistic_{first}'])} ({OPTIMISTIC_NOTE}).", ""]
    probe = report.get("probe")
    if probe:
        lines += [f"Linear probe on the same store and folds: test accuracy {pct(probe['test_accuracy'])} ± "
                  f"{pct(probe['test_accuracy_std'])}, macro-F1 {probe['test_macro_f1']:.3f} (`{probe['run']}`).", ""]
    lines += [f"| fold | epoch | valid {label(first)} | test {label(first)} | test {label(second)} | optimistic {label(first)} |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['fold']} | {r['best_epoch']} | {show(first, r[f'valid_{first}'])} | {show(first, r[f'test_{first}'])} | "
              f"{show(second, r[f'test_{second}'])} | {show(first, r[f'optimistic_{first}'])} |" for r in report["folds"]]
    every = report.get("test_all_folds")
    if every:
        lines += ["", f"Over all folds together (every track tested once, by its own fold's model): accuracy {pct(every['accuracy'])}, "
                      f"macro-F1 {every['macro_f1']:.3f}.", "", "![folds](plots/folds.png) ![confusion](plots/confusion.png)"]
    else:
        lines += ["", "![folds](plots/folds.png)"]
    return "\n".join(lines + ["", "Each fold's own report is in `fold-<k>/report.md`.", ""])


def summary_table(report: dict) -> Table:
    """The table the CLI prints at the end of a run and for ``mrnet-report``."""
    first, second = HEADLINE[task_of(report)]
    if "folds" in report:
        table = Table(title=f"{report['split']} - test metrics of validation-selected checkpoints")
        for col in ("fold", "epoch", f"valid {label(first)}", f"test {label(first)}", f"test {label(second)}", f"optimistic {label(first)}*"):
            table.add_column(col, justify="right")
        for r in report["folds"]:
            table.add_row(str(r["fold"]), str(r["best_epoch"]), show(first, r[f"valid_{first}"]), show(first, r[f"test_{first}"]),
                          show(second, r[f"test_{second}"]), show(first, r[f"optimistic_{first}"]))
        m, s = report["mean"], report["std"]
        both = lambda key, metric: f"{show(metric, m.get(key))} ± {show(metric, s.get(key))}"  # noqa: E731
        table.add_row("mean ± std", "", both(f"valid_{first}", first), both(f"test_{first}", first), both(f"test_{second}", second),
                      both(f"optimistic_{first}", first), style="bold")
        probe = report.get("probe")
        if probe:
            table.add_row("linear probe", "", "", f"{pct(probe['test_accuracy'])} ± {pct(probe['test_accuracy_std'])}",
                          f"{probe['test_macro_f1']:.3f}", "", style="dim")
        table.caption = f"* optimistic: best epoch chosen on the test set (authors' protocol); {_duration(report.get('training_seconds'))} in all"
        return table
    sel, opt = report["selection"], report["optimistic"]
    scored = lambda part: f"{label(first)} {show(first, report[part][first])}, {label(second)} {show(second, report[part][second])}"  # noqa: E731
    table = Table(title=f"{report['dataset'] or report['store']} - {report['split']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    stopped = ", stopped early by --patience" if sel.get("stopped_early") else ""
    table.add_row("checkpoint", f"epoch {sel['epoch']} of {report['epochs_trained']}{stopped}, chosen on the validation split ({sel['metric']})")
    table.add_row("valid", scored("valid"))
    table.add_row("test", scored("test"), style="bold green")
    if task_of(report) == MULTI:
        t = report["test"]
        table.add_row("test at threshold", f"{t['threshold']:.2f} (chosen on validation): precision {t['precision']:.3f}, recall {t['recall']:.3f}")
    if opt:
        table.add_row("optimistic", f"{label(first)} {show(first, opt[first])}, {label(second)} {show(second, opt[second])} at epoch {opt['epoch']} "
                      "(best epoch chosen on test, authors' protocol; not a fair estimate)")
    probe = report.get("probe")
    if probe:
        gap = 100 * (report["test"]["accuracy"] - probe["test_accuracy"])
        table.add_row("linear probe", f"accuracy {pct(probe['test_accuracy'])}, macro-F1 {probe['test_macro_f1']:.3f} "
                      f"(same store and split; this run {gap:+.1f} points): {probe['run']}")
    table.add_row("normalisation", report.get("normalize", "instance"))
    table.add_row("time", _duration(report.get("training_seconds")))
    if report["route_weights"]:
        table.add_row("routes W", ", ".join(f"{r} {w:.2f}" for r, w in report["route_weights"].items()))
    table.add_row("run", report["run"])
    return table


def rerender(path: Path) -> dict | None:
    """Rewrite report.md and the plots of a finished run (or of each fold); None for an unfinished one."""
    run = RunFolder(path)
    if not run.finished:
        plots.plot_curves(run.plots / "curves.png", run.metrics(), selected=None)
        return None
    report = run.report()
    if "folds" in report:
        for k in range(report["n"]):
            rerender(run.fold(k).path)
        write_folds(run, report)
    else:
        write(run, report)
    return report
