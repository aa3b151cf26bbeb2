"""How a run's report reads: report.md, the console's summary table, and the pieces both use.

Each test number is shown with its 95 % bootstrap interval over test tracks where the report holds
one (``ci``), and the linear probe is described as what it is (``fitted``: a C grid, not epochs).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from rich.table import Table

from mrnet.train import stats
from mrnet.train.config import model_options_of
from mrnet.train.models import title
from mrnet.train.models.mrnet import MRNetConfig
from mrnet.train.tasks import HEADLINE, MULTI, label, show, task_of

SELECTION_NOTE = "checkpoint chosen on the validation split; the test split chose nothing"
OPTIMISTIC_NOTE = "best epoch chosen on the test set, as the authors' script does: optimistic, not an estimate of accuracy on new data"


def model_name(cfg: dict) -> str:
    """The model of a run's config: ``model`` as a name, or the name of a nested model section."""
    model = cfg.get("model", "mrnet")
    return model.get("name", "mrnet") if isinstance(model, dict) else model


def _at(opt: dict) -> str:
    return f"C = {opt['C']:g}" if "C" in opt else f"epoch {opt['epoch']}"


def _mrnet_shape(options: dict) -> str:
    """``paper variant, without H, C = 512, ``: MRNet's options (its config's defaults where not given)."""
    defaults = {f.name: f.default for f in fields(MRNetConfig)}
    variant, width, drop = (options.get(k, defaults[k]) for k in ("variant", "width", "drop_routes"))
    without = f", without {', '.join(drop)}" if drop else ""
    return f"{variant} variant{without}, C = {width}, "


def ci(metric: str, value: float | None, interval: dict | None) -> str:
    """A test number with its 95 % bootstrap interval: ``91.7 % [83.3, 100.0]``, ``0.903 [0.871, 0.930]``.

    >>> ci("accuracy", 0.9166, {"accuracy": [0.8333, 1.0]}), ci("roc_auc", 0.9, None)
    ('91.7 % [83.3, 100.0]', '0.900')
    """
    bounds = (interval or {}).get(metric)
    if value is None or not bounds or any(b is None or b != b for b in bounds):
        return show(metric, value)
    if metric == "accuracy":
        return f"{100 * value:.1f} % [{100 * bounds[0]:.1f}, {100 * bounds[1]:.1f}]"
    return f"{value:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def fitted(report: dict) -> str:
    """How the run was trained, as it was: a preset's epochs, or the linear probe's C grid and chosen C."""
    cfg, sel = report["config"], report["selection"]
    if model_name(cfg) == "linear":
        chosen = f"C = {sel['C']:g} chosen on validation" if sel.get("C") is not None else "C chosen on validation"
        grid = sel.get("grid")
        span = f" ({grid[0]:g} to {grid[-1]:g})" if grid else ""
        return (
            f"logistic regression fitted for each C of a grid of {report['epochs_trained']}{span}, {chosen}, no epochs"
        )
    stopped = f", stopped early (--patience {cfg.get('patience')})" if sel.get("stopped_early") else ""
    epochs = report["epochs_trained"]
    return f"preset {cfg['preset']}, {epochs} epoch{'' if epochs == 1 else 's'}{stopped}"


def pct(x: float | None) -> str:
    """``0.917 -> '91.7 %'``; ``None -> 'n/a'``."""
    return "n/a" if x is None else f"{100 * x:.1f} %"


def markdown(report: dict) -> str:
    """report.md: the headline, the optimistic number labelled as such, per-class (or per-tag) scores,
    the confusion matrix (genres), the learned weights."""
    if "folds" in report:
        return _markdown_folds(report)
    cfg, sel, test, opt = report["config"], report["selection"], report["test"], report["optimistic"]
    first, second = HEADLINE[task_of(report)]
    name = cfg.get("model", "mrnet")
    shape = _mrnet_shape(model_options_of(cfg)) if name == "mrnet" else ""
    chosen = f"C = {sel['C']:g}" if name == "linear" and sel.get("C") is not None else f"epoch {sel['epoch']}"
    lines = [
        f"# {title(name)} on {report['dataset'] or report['store']}",
        "",
        f"- store: `{report['store']}` ({report['feature']}, {task_of(report)}); {report['split']}; "
        + " / ".join(f"{n} {name}" for name, n in report["sizes"].items())
        + " tracks",
        f"- model: {name}, {shape}{report['model']['parameters']:,} parameters; input normalisation {report.get('normalize', 'instance')}; "
        f"{fitted(report)}, {_duration(report.get('training_seconds'))}, seed {cfg['seed']}",
        "",
        f"**Test {label(first)} {ci(first, test[first], test.get('interval'))}, {label(second)} {ci(second, test[second], test.get('interval'))}** "
        f"({chosen}, {sel['note']}; selected on validation {sel['metric']}).",
        "",
    ]
    if test.get("interval"):
        lines += [
            f"In brackets: 95 % bootstrap intervals over the test tracks ({stats.RESAMPLES} resamples, seeded).",
            "",
        ]
    if opt:
        lines += [
            f"Optimistic: {label(first)} {show(first, opt[first])}, {label(second)} {show(second, opt[second])} at {_at(opt)} ({opt['note']}).",
            "",
        ]
    probe = report.get("probe")
    if probe:
        lines += [
            f"Linear probe on the same store and split: test accuracy {pct(probe['test_accuracy'])}, macro-F1 "
            f"{probe['test_macro_f1']:.3f} (`{probe['run']}`).",
            "",
        ]
    if task_of(report) == MULTI:
        lines += [
            f"At the threshold chosen on validation ({test['threshold']:.2f}): precision {test['precision']:.3f}, recall "
            f"{test['recall']:.3f}, F1 {test['f1']:.3f} (micro), macro-F1 {test['macro_f1']:.3f}.",
            "",
            "## Per tag (test)",
            "",
            "| tag | ROC-AUC | PR-AUC | positive clips |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {t['tag']} | {show('roc_auc', t['roc_auc'])} | {show('pr_auc', t['pr_auc'])} | {t['positives']} |"
            for t in test["per_tag"]
        ]
        figures = "![curves](plots/curves.png) ![tags](plots/tags.png)"
    else:
        lines += ["## Per class (test)", "", "| genre | precision | recall | F1 | tracks |", "|---|---|---|---|---|"]
        lines += [
            f"| {c['genre']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
            for c in test["per_class"]
        ]
        genres = report["genres"]
        lines += [
            "",
            "## Confusion matrix (test; rows true, columns predicted)",
            "",
            "| | " + " | ".join(genres) + " |",
            "|---" * (len(genres) + 1) + "|",
        ]
        lines += [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in zip(genres, test["confusion"])]
        figures = "![curves](plots/curves.png) ![confusion](plots/confusion.png)"
    if report["route_weights"]:
        lines += ["", "## Learned weights", "", "| route | W |", "|---|---|"]
        lines += [f"| {r} | {w:.3f} |" for r, w in report["route_weights"].items()]
        lines += ["", "| layer | weight |", "|---|---|"] + [
            f"| {k} | {w:.3f} |" for k, w in report["layer_weights"].items()
        ]
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
    lines = [
        f"# {title(report['config'].get('model', 'mrnet'))} on {report['dataset'] or report['store']}: {report['split']}",
        "",
        f"**Test {label(first)} {show(first, mean[f'test_{first}'])} ± {show(first, std[f'test_{first}'])}, "
        f"{label(second)} {show(second, mean[f'test_{second}'])} ± {show(second, std[f'test_{second}'])}** (mean ± sample std over "
        f"{report['n']} folds; each fold's {SELECTION_NOTE}; {_duration(report.get('training_seconds'))} in all).",
        "",
    ]
    if f"optimistic_{first}" in mean:
        lines += [
            f"Optimistic: {label(first)} {show(first, mean[f'optimistic_{first}'])} ± {show(first, std[f'optimistic_{first}'])} ({OPTIMISTIC_NOTE}).",
            "",
        ]
    probe = report.get("probe")
    if probe:
        lines += [
            f"Linear probe on the same store and folds: test accuracy {pct(probe['test_accuracy'])} ± "
            f"{pct(probe['test_accuracy_std'])}, macro-F1 {probe['test_macro_f1']:.3f} (`{probe['run']}`).",
            "",
        ]
    lines += [
        f"| fold | epoch | valid {label(first)} | test {label(first)} | test {label(second)} | optimistic {label(first)} |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['fold']} | {r['best_epoch']} | {show(first, r[f'valid_{first}'])} | {ci(first, r[f'test_{first}'], r.get('interval'))} | "
        f"{ci(second, r[f'test_{second}'], r.get('interval'))} | {show(first, r[f'optimistic_{first}'])} |"
        for r in report["folds"]
    ]
    every = report.get("test_all_folds")
    if every:
        brackets = "; in brackets, 95 % bootstrap intervals over the tracks" if every.get("interval") else ""
        lines += [
            "",
            f"Over all folds together (every track tested once, by its own fold's model{brackets}): {label(first)} "
            f"{ci(first, every[first], every.get('interval'))}, {label(second)} {ci(second, every[second], every.get('interval'))}.",
        ]
    figures = ["![folds](plots/folds.png)"] + (
        ["![confusion](plots/confusion.png)"] if "confusion" in (every or {}) else []
    )
    if (Path(report["run"]) / "plots" / "weights.png").is_file():
        figures.append("![weights](plots/weights.png)")
    lines += ["", " ".join(figures)]
    return "\n".join(lines + ["", "Each fold's own report is in `fold-<k>/report.md`.", ""])


def summary_table(report: dict) -> Table:
    """The table the CLI prints at the end of a run and for ``mrnet-report``."""
    first, second = HEADLINE[task_of(report)]
    if "folds" in report:
        table = Table(title=f"{report['split']} - test metrics of validation-selected checkpoints")
        for col in (
            "fold",
            "epoch",
            f"valid {label(first)}",
            f"test {label(first)}",
            f"test {label(second)}",
            f"optimistic {label(first)}*",
        ):
            table.add_column(col, justify="right")
        for r in report["folds"]:
            table.add_row(
                str(r["fold"]),
                str(r["best_epoch"]),
                show(first, r[f"valid_{first}"]),
                ci(first, r[f"test_{first}"], r.get("interval")),
                ci(second, r[f"test_{second}"], r.get("interval")),
                show(first, r[f"optimistic_{first}"]),
            )
        m, s = report["mean"], report["std"]
        both = lambda key, metric: f"{show(metric, m.get(key))} ± {show(metric, s.get(key))}"  # noqa: E731
        table.add_row(
            "mean ± std",
            "",
            both(f"valid_{first}", first),
            both(f"test_{first}", first),
            both(f"test_{second}", second),
            both(f"optimistic_{first}", first),
            style="bold",
        )
        every = report.get("test_all_folds")
        if every and every.get("interval"):
            table.add_row(
                "all folds pooled",
                "",
                "",
                ci(first, every[first], every["interval"]),
                ci(second, every[second], every["interval"]),
                "",
            )
        probe = report.get("probe")
        if probe:
            table.add_row(
                "linear probe",
                "",
                "",
                f"{pct(probe['test_accuracy'])} ± {pct(probe['test_accuracy_std'])}",
                f"{probe['test_macro_f1']:.3f}",
                "",
                style="dim",
            )
        table.caption = (
            f"* optimistic: best epoch chosen on the test set (authors' protocol); {_duration(report.get('training_seconds'))} in all"
            + (
                "; in brackets: 95 % bootstrap intervals over each fold's test tracks, and over all tracks pooled"
                if (report.get("test_all_folds") or {}).get("interval")
                else ""
            )
        )
        return table
    sel, opt = report["selection"], report["optimistic"]
    interval = report["test"].get("interval")

    def scored(part: str) -> str:
        bounds = interval if part == "test" else None
        return f"{label(first)} {ci(first, report[part][first], bounds)}, {label(second)} {ci(second, report[part][second], bounds)}"

    table = Table(title=f"{report['dataset'] or report['store']} - {report['split']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    stopped = ", stopped early by --patience" if sel.get("stopped_early") else ""
    if model_name(report["config"]) == "linear":
        table.add_row("fit", fitted(report))
    else:
        table.add_row(
            "checkpoint",
            f"epoch {sel['epoch']} of {report['epochs_trained']}{stopped}, chosen on the validation split ({sel['metric']})",
        )
    table.add_row("valid", scored("valid"))
    table.add_row(
        "test",
        scored("test") + (" (95 % bootstrap intervals over test tracks)" if interval else ""),
        style="bold green",
    )
    if task_of(report) == MULTI:
        t = report["test"]
        table.add_row(
            "test at threshold",
            f"{t['threshold']:.2f} (chosen on validation): precision {t['precision']:.3f}, recall {t['recall']:.3f}",
        )
    if opt:
        table.add_row(
            "optimistic",
            f"{label(first)} {show(first, opt[first])}, {label(second)} {show(second, opt[second])} at {_at(opt)} "
            f"(best {'C' if 'C' in opt else 'epoch'} chosen on test, authors' protocol; not a fair estimate)",
        )
    probe = report.get("probe")
    if probe:
        gap = 100 * (report["test"]["accuracy"] - probe["test_accuracy"])
        table.add_row(
            "linear probe",
            f"accuracy {pct(probe['test_accuracy'])}, macro-F1 {probe['test_macro_f1']:.3f} "
            f"(same store and split; this run {gap:+.1f} points): {probe['run']}",
        )
    table.add_row("normalisation", report.get("normalize", "instance"))
    table.add_row("time", _duration(report.get("training_seconds")))
    if report["route_weights"]:
        table.add_row("routes W", ", ".join(f"{r} {w:.2f}" for r, w in report["route_weights"].items()))
    table.add_row("run", report["run"])
    return table
