"""The final report of a run: ``report.json`` (numbers), ``report.md`` (for people), plots, a summary table.

The headline test numbers come from the checkpoint chosen on the validation split. The authors'
protocol (best epoch chosen on the test set) is reported beside them, labelled optimistic.

>>> rows = [{"fold": 0, "test_accuracy": 0.9, "test_macro_f1": 0.8}, {"fold": 1, "test_accuracy": 1.0, "test_macro_f1": 0.9}]
>>> agg = aggregate(rows)
>>> agg["mean"]["test_accuracy"], round(agg["std"]["test_accuracy"], 4)
(0.95, 0.0707)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from mrnet.train import plots
from mrnet.train.config import TrainConfig
from mrnet.train.evaluate import mean_std, scores
from mrnet.train.models import count_parameters
from mrnet.train.runs import RunFolder, write_json

SELECTION_NOTE = "checkpoint chosen on the validation split; the test split chose nothing"
OPTIMISTIC_NOTE = "best epoch chosen on the test set, as the authors' script does: optimistic, not an estimate of accuracy on new data"
MODEL_TITLES = {"mrnet": "MRNet", "linear": "Linear probe"}
FOLD_KEYS = ("test_accuracy", "test_macro_f1", "valid_accuracy", "optimistic_accuracy", "optimistic_macro_f1")


def optimistic(history: list[dict]) -> dict | None:
    """The epoch with the best test accuracy (earliest on ties), as the authors choose it.

    >>> optimistic([{"epoch": 1, "test_accuracy": 0.5, "test_macro_f1": 0.4}, {"epoch": 2, "test_accuracy": 0.7, "test_macro_f1": 0.6}])["epoch"]
    2
    """
    tested = [r for r in history if "test_accuracy" in r]
    if not tested:
        return None
    best = max(tested, key=lambda r: (r["test_accuracy"], -r["epoch"]))
    return {"epoch": best["epoch"], "accuracy": best["test_accuracy"], "macro_f1": best["test_macro_f1"], "note": OPTIMISTIC_NOTE}


def build(*, cfg: TrainConfig, run: RunFolder, store: dict, history: list[dict], best: dict, test: dict,
          model: torch.nn.Module, class_weights: list[float]) -> dict:
    """The report of one finished run: ``best`` is checkpoints/best.pt, ``test`` its evaluation on the test split."""
    genres = store["genres"]
    per_class = [{"genre": g, "precision": test["precision"][i], "recall": test["recall"][i], "f1": test["f1"][i],
                  "support": test["support"][i]} for i, g in enumerate(genres)]
    return {
        "run": str(run.path),
        "store": store["url"],
        "dataset": store["provenance"].get("dataset", ""),
        "feature": store["provenance"]["feature"],
        "split": store["split"],
        "sizes": store["sizes"],
        "config": cfg.to_json(),
        "model": {"name": cfg.model, "parameters": count_parameters(model), "parameters_without_head": count_parameters(model, head=False),
                  "routes": list(getattr(model, "route_names", ())), "variant": cfg.variant},
        "normalize": cfg.normalize or "instance",
        "epochs_trained": len(history),
        "selection": {"split": "valid", "metric": cfg.select_metric, "epoch": best["epoch"], "note": SELECTION_NOTE},
        "valid": {k: best["valid"][f"valid_{k}"] for k in ("loss", "accuracy", "macro_f1")},
        "test": {**{k: test[k] for k in ("loss", "accuracy", "macro_f1")}, "per_class": per_class, "confusion": test["confusion"]},
        "optimistic": optimistic(history),
        "genres": genres,
        "class_weights": dict(zip(genres, class_weights)),
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
    opt = report["optimistic"] or {}
    return {"fold": k, "best_epoch": report["selection"]["epoch"], "valid_accuracy": report["valid"]["accuracy"],
            "test_accuracy": report["test"]["accuracy"], "test_macro_f1": report["test"]["macro_f1"],
            "optimistic_accuracy": opt.get("accuracy"), "optimistic_macro_f1": opt.get("macro_f1")}


def aggregate(rows: list[dict]) -> dict:
    """Mean and sample standard deviation over folds of each number in ``FOLD_KEYS`` that every fold has."""
    mean, std = {}, {}
    for key in FOLD_KEYS:
        values = [r.get(key) for r in rows]
        if values and all(v is not None for v in values):
            mean[key], std[key] = mean_std(values)
    return {"folds": rows, "n": len(rows), "mean": mean, "std": std}


def write_aggregate(run: RunFolder, fold_reports: list[dict]) -> dict:
    """The top-level report of a ``--folds all`` run."""
    first = fold_reports[0]
    # every track is in exactly one test fold, so the folds' test confusions add up to one over the whole dataset
    confusion = np.sum([np.asarray(r["test"]["confusion"]) for r in fold_reports], axis=0)
    report = {"run": str(run.path), "store": first["store"], "dataset": first["dataset"], "feature": first["feature"],
              "split": f"{len(fold_reports)}-fold cross-validation", "config": {**first["config"], "fold": None, "all_folds": True},
              "selection": first["selection"] | {"epoch": None}, "genres": first["genres"],
              "test_all_folds": {**scores(confusion), "confusion": confusion.tolist()},
              **aggregate([fold_row(k, r) for k, r in enumerate(fold_reports)])}
    write_folds(run, report)
    return report


def write_folds(run: RunFolder, report: dict) -> None:
    """report.json, report.md and the plots of a ``--folds all`` run."""
    report["probe"] = probe_for(run.path, report)
    plots.plot_folds(run.plots / "folds.png", report["folds"], report["mean"], report["std"], chance=1 / len(report["genres"]))
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
    if report["config"].get("model", "mrnet") == "linear" or not path.parent.is_dir():
        return None
    mine = _store_of(Path(path))
    found = []
    for other in sorted(Path(path).parent.iterdir()):
        if other == Path(path) or not (other / "report.json").is_file() or not (other / "config.json").is_file():
            continue
        try:
            theirs = json.loads((other / "report.json").read_text())
            if theirs["config"].get("model") != "linear" or _store_of(other) != mine:
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


def markdown(report: dict) -> str:
    """report.md: the headline, the optimistic number labelled as such, per-class scores, the confusion matrix."""
    if "folds" in report:
        return _markdown_folds(report)
    cfg, sel, test, opt = report["config"], report["selection"], report["test"], report["optimistic"]
    drop = f", without {', '.join(cfg['drop_routes'])}" if cfg["drop_routes"] else ""
    name = cfg.get("model", "mrnet")
    shape = f"{cfg['variant']} variant{drop}, C = {cfg['channels']}, " if name == "mrnet" else ""
    lines = [
        f"# {MODEL_TITLES.get(name, name)} on {report['dataset'] or report['store']}",
        "",
        f"- store: `{report['store']}` ({report['feature']}); {report['split']}; "
        + " / ".join(f"{n} {name}" for name, n in report["sizes"].items()) + " tracks",
        f"- model: {name}, {shape}{report['model']['parameters']:,} parameters; input normalisation {report.get('normalize', 'instance')}; "
        f"preset {cfg['preset']}, {report['epochs_trained']} epochs, seed {cfg['seed']}",
        "",
        f"**Test accuracy {pct(test['accuracy'])}, macro-F1 {test['macro_f1']:.3f}** "
        f"(epoch {sel['epoch']}, {sel['note']}; selected on validation {sel['metric']}).",
        "",
    ]
    if opt:
        lines += [f"Optimistic: {pct(opt['accuracy'])}, macro-F1 {opt['macro_f1']:.3f} at epoch {opt['epoch']} ({opt['note']}).", ""]
    probe = report.get("probe")
    if probe:
        lines += [f"Linear probe on the same store and split: test accuracy {pct(probe['test_accuracy'])}, macro-F1 "
                  f"{probe['test_macro_f1']:.3f} (`{probe['run']}`).", ""]
    lines += ["## Per class (test)", "", "| genre | precision | recall | F1 | tracks |", "|---|---|---|---|---|"]
    lines += [f"| {c['genre']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |" for c in test["per_class"]]
    genres = report["genres"]
    lines += ["", "## Confusion matrix (test; rows true, columns predicted)", "", "| | " + " | ".join(genres) + " |",
              "|---" * (len(genres) + 1) + "|"]
    lines += [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in zip(genres, test["confusion"])]
    if report["route_weights"]:
        lines += ["", "## Learned weights", "", "| route | W |", "|---|---|"]
        lines += [f"| {r} | {w:.3f} |" for r, w in report["route_weights"].items()]
        lines += ["", "| layer | weight |", "|---|---|"] + [f"| {k} | {w:.3f} |" for k, w in report["layer_weights"].items()]
    weights = " ![weights](plots/weights.png)" if report["route_weights"] else ""
    lines += ["", f"![curves](plots/curves.png) ![confusion](plots/confusion.png){weights}", ""]
    return "\n".join(lines)


def _markdown_folds(report: dict) -> str:
    mean, std = report["mean"], report["std"]
    title = MODEL_TITLES.get(report["config"].get("model", "mrnet"), report["config"].get("model"))
    lines = [f"# {title} on {report['dataset'] or report['store']}: {report['split']}", "",
             f"**Test accuracy {pct(mean['test_accuracy'])} ± {pct(std['test_accuracy'])}, "
             f"macro-F1 {mean['test_macro_f1']:.3f} ± {std['test_macro_f1']:.3f}** (mean ± sample std over {report['n']} folds; "
             f"each fold's {SELECTION_NOTE}).", ""]
    if "optimistic_accuracy" in mean:
        lines += [f"Optimistic: {pct(mean['optimistic_accuracy'])} ± {pct(std['optimistic_accuracy'])} ({OPTIMISTIC_NOTE}).", ""]
    probe = report.get("probe")
    if probe:
        lines += [f"Linear probe on the same store and folds: test accuracy {pct(probe['test_accuracy'])} ± "
                  f"{pct(probe['test_accuracy_std'])}, macro-F1 {probe['test_macro_f1']:.3f} (`{probe['run']}`).", ""]
    lines += ["| fold | epoch | valid acc | test acc | test macro-F1 | optimistic acc |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['fold']} | {r['best_epoch']} | {pct(r['valid_accuracy'])} | {pct(r['test_accuracy'])} | "
              f"{r['test_macro_f1']:.3f} | {pct(r['optimistic_accuracy'])} |" for r in report["folds"]]
    every = report.get("test_all_folds")
    if every:
        lines += ["", f"Over all folds together (every track tested once, by its own fold's model): accuracy {pct(every['accuracy'])}, "
                      f"macro-F1 {every['macro_f1']:.3f}.", "", "![folds](plots/folds.png) ![confusion](plots/confusion.png)"]
    else:
        lines += ["", "![folds](plots/folds.png)"]
    return "\n".join(lines + ["", "Each fold's own report is in `fold-<k>/report.md`.", ""])


def summary_table(report: dict) -> Table:
    """The table the CLI prints at the end of a run and for ``mrnet-report``."""
    if "folds" in report:
        table = Table(title=f"{report['split']} - test metrics of validation-selected checkpoints")
        for col in ("fold", "epoch", "valid acc", "test acc", "test macro-F1", "optimistic acc*"):
            table.add_column(col, justify="right")
        for r in report["folds"]:
            table.add_row(str(r["fold"]), str(r["best_epoch"]), pct(r["valid_accuracy"]), pct(r["test_accuracy"]),
                          f"{r['test_macro_f1']:.3f}", pct(r["optimistic_accuracy"]))
        m, s = report["mean"], report["std"]
        table.add_row("mean ± std", "", f"{pct(m['valid_accuracy'])} ± {pct(s['valid_accuracy'])}",
                      f"{pct(m['test_accuracy'])} ± {pct(s['test_accuracy'])}",
                      f"{m['test_macro_f1']:.3f} ± {s['test_macro_f1']:.3f}",
                      f"{pct(m.get('optimistic_accuracy'))} ± {pct(s.get('optimistic_accuracy'))}", style="bold")
        probe = report.get("probe")
        if probe:
            table.add_row("linear probe", "", "", f"{pct(probe['test_accuracy'])} ± {pct(probe['test_accuracy_std'])}",
                          f"{probe['test_macro_f1']:.3f}", "", style="dim")
        table.caption = "* optimistic: best epoch chosen on the test set (authors' protocol)"
        return table
    sel, opt = report["selection"], report["optimistic"]
    table = Table(title=f"{report['dataset'] or report['store']} - {report['split']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("checkpoint", f"epoch {sel['epoch']} of {report['epochs_trained']}, chosen on the validation split ({sel['metric']})")
    table.add_row("valid", f"accuracy {pct(report['valid']['accuracy'])}, macro-F1 {report['valid']['macro_f1']:.3f}")
    table.add_row("test", f"accuracy {pct(report['test']['accuracy'])}, macro-F1 {report['test']['macro_f1']:.3f}", style="bold green")
    if opt:
        table.add_row("optimistic", f"accuracy {pct(opt['accuracy'])}, macro-F1 {opt['macro_f1']:.3f} at epoch {opt['epoch']} "
                      "(best epoch chosen on test, authors' protocol; not a fair estimate)")
    probe = report.get("probe")
    if probe:
        gap = 100 * (report["test"]["accuracy"] - probe["test_accuracy"])
        table.add_row("linear probe", f"accuracy {pct(probe['test_accuracy'])}, macro-F1 {probe['test_macro_f1']:.3f} "
                      f"(same store and split; this run {gap:+.1f} points): {probe['run']}")
    table.add_row("normalisation", report.get("normalize", "instance"))
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
