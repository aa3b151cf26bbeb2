"""Finished runs side by side: one row per configuration and test set, mean and spread over its seeds.

``compare(paths)`` reads run folders (a run, a ``--folds all`` run, or a folder holding runs) and
groups them by the fingerprint of their resolved configuration and by their test set
(``fingerprint.py``): runs are one row only when everything that changes a result is equal (their
count is the number of seeds; a ``--folds all`` run's folds count as well, its test set being the
whole dataset), and runs on another store, fold or split are never averaged together. Each row's
label says what sets it apart from the other rows (``mrnet small --drop-route L1, 1 epoch``). A row
of several runs gives the mean and sample standard deviation; a row of one run gives its 95 %
bootstrap interval over test tracks (``stats.py``), never a ``± 0``. Parameter counts and training
time (the runs' own training time) come with them. ``paired_tests(rows)`` adds, for each pair of
rows scored on the same test tracks, a paired test from their ``predictions.parquet``.
``write(comparison, folder)`` writes ``comparison.md``, ``comparison.json`` and ``comparison.png``.

The numbers are the task's headline metrics (``tasks.HEADLINE``): test accuracy and macro-F1 for a
genre store, macro ROC-AUC and PR-AUC for a tag store. Runs of both tasks in one comparison are kept
apart: one table and one row of the plot per task, never one column mixing accuracy with ROC-AUC.

Every number is a test number of a checkpoint chosen on validation; the optimistic numbers (best
epoch chosen on test) are not compared.

>>> rows = [{"label": "fcn5 fcn5-paper", "model": "fcn5", "store": "s/mtat.zarr", "feature": "mel96", "task": "multi-label", "n": 1,
...          "roc_auc": 0.9, "roc_auc_std": None, "roc_auc_interval": [0.88, 0.92], "pr_auc": 0.4, "pr_auc_std": None,
...          "pr_auc_interval": [0.37, 0.43], "parameters": 447732, "hours": 2.0}]
>>> print(markdown(rows).splitlines()[4])
| fcn5 fcn5-paper | mtat.zarr | mel96 | 1 | 0.900 [0.880, 0.920] | 0.400 [0.370, 0.430] | 447,732 | 2.00 |
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from rich.markup import escape
from rich.table import Table

from mrnet.core.errors import UserError
from mrnet.train import fingerprint, predictions, stats
from mrnet.train.compare_figure import figure
from mrnet.train.evaluate import mean_std
from mrnet.train.plots import save_figure
from mrnet.train.render import model_name
from mrnet.train.report import training_seconds
from mrnet.train.runs import RunFolder, write_json
from mrnet.train.tasks import HEADLINE, SINGLE, TASK_NAMES, label, task_of

NOTE = (
    "Test numbers of checkpoints chosen on validation only. n counts seeds (and the folds of a --folds all run); with n > 1, "
    "mean ± sample standard deviation; in brackets, the 95 % bootstrap interval over test tracks (with n > 1, of the mean "
    "over the pooled test predictions)."
)


@dataclass
class Group:
    """The runs of one configuration (one fingerprint) on one test set."""

    model: str
    preset: str
    store: str
    dataset: str
    feature: str
    task: str = SINGLE
    resolved: dict = field(default_factory=dict)
    fingerprint: str = ""
    classes: int = 0
    test_set: str = ""
    runs: list[str] = field(default_factory=list)
    parts: list[RunFolder] = field(default_factory=list)  # every run, or every fold of a --folds all run
    scores: dict[str, list[float]] = field(default_factory=dict)  # headline metric -> one value per fold or run
    intervals: dict[str, list] = field(default_factory=dict)  # a single run's bootstrap intervals
    parameters: int | None = None
    seconds: float = 0.0

    def add(self, report: dict) -> None:
        for metric in HEADLINE[self.task]:
            self.scores.setdefault(metric, []).append(report["test"][metric])
        self.intervals = report["test"].get("interval", {})

    def summary(self) -> dict:
        n = len(self.scores[HEADLINE[self.task][0]])
        row = {
            "label": "",
            "model": self.model,
            "preset": self.preset,
            "store": self.store,
            "dataset": self.dataset,
            "feature": self.feature,
            "task": self.task,
            "n": n,
            "classes": self.classes,
            "fingerprint": self.fingerprint,
            "test_set": self.test_set,
        }
        # several seeds (or the folds of a --folds all run): the interval of their mean over the pooled test predictions
        pooled = predictions.pooled_intervals(self.runs, HEADLINE[self.task]) if n > 1 else None
        for metric in HEADLINE[self.task]:
            mean, std = mean_std(self.scores[metric])
            row[metric], row[f"{metric}_std"] = mean, std if n > 1 else None
            row[f"{metric}_interval"] = (
                self.intervals.get(metric) if n == 1 else (pooled or {}).get("interval", {}).get(metric)
            )
        return row | {
            "parameters": self.parameters,
            "hours": self.seconds / 3600,
            "runs": self.runs,
            "predictions": [str(p.path / predictions.FILE) for p in self.parts],
        }


def _seeds_of(run: RunFolder) -> list[RunFolder]:
    """A ``--seeds`` folder's seed runs (each a run of its own, one row with the others), else the run itself."""
    seeds = json.loads(run.config_file.read_text()).get("seeds") or []
    return [RunFolder(run.path / f"seed-{s}") for s in seeds] if seeds else [run]


def find_runs(paths: list[Path]) -> list[RunFolder]:
    """Finished runs at or directly under ``paths`` (the folds of a ``--folds all`` run stay inside it)."""
    found = []
    for path in paths:
        run = RunFolder(Path(path))
        if run.config_file.exists():
            found += _seeds_of(run)
        elif Path(path).is_dir():
            found += [
                r for p in sorted(Path(path).iterdir()) if (p / "config.json").exists() for r in _seeds_of(RunFolder(p))
            ]
        else:
            raise UserError(f"{path} is neither a run folder nor a folder of runs")
    finished = [r for r in found if r.finished]
    if not finished:
        raise UserError(
            f"no finished runs in {', '.join(map(str, paths))}: a run is finished once it has a report.json"
        )
    return finished


def compare(paths: list[Path]) -> list[dict]:
    """One summary row per (fingerprint, test set), genre stores first, then in the order the groups are met."""
    groups: dict[tuple[str, str], Group] = {}
    for run in find_runs(paths):
        report, mark = run.report(), fingerprint.record(run.path)
        config = report.get("config", {})
        key = (mark["fingerprint"], fingerprint.scored_on(report))
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(
                model_name(config),
                config.get("preset", ""),
                report["store"],
                report.get("dataset", ""),
                report.get("feature", ""),
                task_of(report),
                mark["resolved"],
                mark["fingerprint"],
                len(report.get("genres") or report.get("tags") or []),
                key[1],
            )
            group.resolved = {
                **mark["resolved"],
                "preset": group.preset,
                "store": report["store"],
                "fold": config.get("fold") if not config.get("all_folds") else None,
            }
        group.runs.append(str(run.path))
        folds = [run.fold(k) for k in range(report["n"])] if "folds" in report else [run]
        for part in folds:
            r = part.report()
            group.add(r)
            group.parts.append(part)
            group.parameters = r.get("model", {}).get("parameters", group.parameters)
            group.seconds += training_seconds(part.metrics())
    found = list(groups.values())
    rows = [g.summary() for g in found]
    for task in {g.task for g in found}:
        mine = [k for k, g in enumerate(found) if g.task == task]
        for k, text in zip(mine, fingerprint.distinguishing([found[k].resolved for k in mine])):
            rows[k]["label"] = text
    return sorted(rows, key=lambda r: list(HEADLINE).index(r["task"]))  # stable: the met order within a task


# --- paired tests ---------------------------------------------------------------------------------


def _test_predictions(row: dict) -> pl.DataFrame | None:
    """A row's test predictions, one per track (a row of several seeds: their mean probability); None if a run has none."""
    frames = []
    for path in row.get("predictions", []):
        if not Path(path).is_file():
            return None
        frames.append(predictions.read(Path(path)).filter(pl.col("split") == "test"))
    if not frames:
        return None
    frame = pl.concat(frames, how="vertical")
    probs = [c for c in frame.columns if c.startswith(predictions.PROB)]
    return (
        frame.group_by("track_id")
        .agg(pl.col("true").first(), pl.col("threshold").first(), *(pl.col(c).mean() for c in probs))
        .sort("track_id")
    )  # what predictions.truth and predictions.probabilities read


def paired_tests(rows: list[dict]) -> list[dict]:
    """For each pair of rows of one task: a paired test of each headline metric where both were scored on the same
    test tracks (same dataset and track ids), else ``not paired`` with the reason."""
    tests = []
    loaded = {i: _test_predictions(r) for i, r in enumerate(rows)}
    for (i, a), (j, b) in itertools.combinations(enumerate(rows), 2):
        if a["task"] != b["task"]:
            continue
        pa, pb = loaded[i], loaded[j]
        entry = {"first": a["label"], "second": b["label"], "task": a["task"]}
        if pa is None or pb is None:
            tests.append(
                entry | {"paired": False, "reason": "no predictions.parquet (a run from before they were kept)"}
            )
            continue
        if a["dataset"] != b["dataset"] or pa["track_id"].to_list() != pb["track_id"].to_list():
            tests.append(entry | {"paired": False, "reason": "different test tracks"})
            continue
        truth = predictions.truth(pa)
        entry["paired"] = True
        entry["tests"] = [
            stats.paired(truth, predictions.probabilities(pa), predictions.probabilities(pb), m)
            for m in HEADLINE[a["task"]]
        ]
        tests.append(entry)
    return tests


def by_task(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of each task present, genre stores first (a row without ``task`` is a genre row, as written before tags)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r.get("task", SINGLE), []).append(r)
    return {t: out[t] for t in HEADLINE if t in out}


def cell(row: dict, metric: str) -> str:
    """``91.7 [83.3, 100.0]`` (one run: its bootstrap interval over test tracks), ``91.7 ± 1.2 [85.0, 97.5]``
    (several: mean ± sample standard deviation, and the interval of the mean over their pooled test
    predictions) or without the brackets where no predictions were kept."""
    scale, digits = (100, 1) if metric == "accuracy" else (1, 3)
    text = f"{scale * row[metric]:.{digits}f}"
    if row["n"] > 1 and row.get(f"{metric}_std") is not None:
        text += f" ± {scale * row[f'{metric}_std']:.{digits}f}"
    ci = row.get(f"{metric}_interval")
    if ci and not any(v is None or math.isnan(v) for v in ci):
        return f"{text} [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"
    return text


def _header(metric: str) -> str:
    return f"test {label(metric)}" + (" %" if metric == "accuracy" else "")


def _test_line(test: dict) -> str:
    scale = 100 if test["metric"] == "accuracy" else 1
    unit = " points" if test["metric"] == "accuracy" else ""
    detail = (
        f"{test['only_first']} vs {test['only_second']} tracks right by one only"
        if "only_first" in test
        else "difference 95 % interval [{:.3g}, {:.3g}]".format(*(scale * v for v in test["interval"]))
    )
    return f"{label(test['metric'])} {scale * test['difference']:+.{1 if scale == 100 else 3}f}{unit}, {test['test']} p = {test['p']:.3g} ({detail})"


def markdown(rows: list[dict], tests: list[dict] | None = None) -> str:
    """``comparison.md``: one table per task (a heading names each task when there are two), then the paired tests."""
    tasks = by_task(rows)
    lines = ["# Model comparison", ""]
    for task, group in tasks.items():
        first, second = HEADLINE[task]
        if len(tasks) > 1:
            lines += [f"## {TASK_NAMES[task]} ({task} stores: test {label(first)} and {label(second)})", ""]
        lines += [
            f"| configuration | store | feature | n | {_header(first)} | {_header(second)} | parameters | training hours |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in group:
            lines.append(
                f"| {r.get('label') or r['model']} | {Path(r['store']).name} | {r['feature']} | {r['n']} | {cell(r, first)} | "
                f"{cell(r, second)} | {r['parameters']:,} | {r['hours']:.2f} |"
            )
        lines.append("")
    lines += [NOTE, ""]
    if tests:
        lines += [
            "## Paired tests",
            "",
            "Each pair of rows scored on the same test tracks (a row of several seeds by their mean "
            "probability per track): accuracy by the exact McNemar test, the other metrics by a paired bootstrap "
            f"({stats.RESAMPLES} resamples of the test tracks).",
            "",
        ]
        for t in tests:
            what = "; ".join(_test_line(x) for x in t["tests"]) if t["paired"] else f"not paired: {t['reason']}"
            lines.append(f"- **{t['first']}** vs **{t['second']}**: {what}")
        lines.append("")
    return "\n".join([*lines, "![comparison](comparison.png)", ""])


def console_tables(rows: list[dict]) -> list[Table]:
    """The terminal's view of the comparison: one Rich table per task."""
    tables = []
    for task, group in by_task(rows).items():
        first, second = HEADLINE[task]
        table = Table(title=f"model comparison, {task} (test, checkpoints chosen on validation)", caption=NOTE)
        for col in ("configuration", "store", "n", label(first), label(second), "parameters", "hours"):
            table.add_column(col, justify="left" if col in ("configuration", "store") else "right")
        for r in group:
            table.add_row(
                escape(r.get("label") or r["model"]),
                escape(Path(r["store"]).name),
                str(r["n"]),
                cell(r, first),
                cell(r, second),
                f"{r['parameters']:,}",
                f"{r['hours']:.2f}",
            )
        tables.append(table)
    return tables


def console_tests(tests: list[dict]) -> Table | None:
    """The paired tests as a Rich table; None without a pair."""
    if not tests:
        return None
    table = Table(title="paired tests (same test tracks)")
    for col in ("rows", "result"):
        table.add_column(col)
    for t in tests:
        what = "\n".join(_test_line(x) for x in t["tests"]) if t["paired"] else f"not paired: {t['reason']}"
        table.add_row(escape(f"{t['first']}\nvs {t['second']}"), escape(what))
    return table


def write(
    rows: list[dict], folder: Path, *, tests: list[dict] | None = None, formats: tuple[str, ...] = ("png",)
) -> Path:
    """comparison.md, comparison.json (the rows, and the paired tests in ``paired.json``) and the figure in each of
    ``formats`` in ``folder``; returns the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "comparison.json", rows)
    if tests is not None:
        write_json(folder / "paired.json", tests)
    save_figure(figure(rows), folder / "comparison.png", formats)
    (folder / "comparison.md").write_text(markdown(rows, tests))
    return folder / "comparison.md"


__all__ = [
    "Group",
    "by_task",
    "cell",
    "compare",
    "console_tables",
    "console_tests",
    "find_runs",
    "markdown",
    "paired_tests",
    "write",
]
