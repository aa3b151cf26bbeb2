"""Finished runs side by side: one row per model, preset and store, mean and spread over folds and seeds.

``compare(paths)`` reads run folders (a run, a ``--folds all`` run, or a folder holding runs),
groups them by model, preset and store, and gives each group the mean and sample standard deviation
of its test numbers: every fold of a cross-validation run and every single-split run (another seed)
counts once. Parameter counts and training time (the sum of the runs' epoch times) come with them.
``write(comparison, folder)`` writes ``comparison.md``, ``comparison.json`` and ``comparison.png``.

The numbers are the task's headline metrics (``tasks.HEADLINE``): test accuracy and macro-F1 for a
genre store, macro ROC-AUC and PR-AUC for a tag store. Runs of both tasks in one comparison are kept
apart: one table and one row of the plot per task, never one column mixing accuracy with ROC-AUC.

Every number is a test number of a checkpoint chosen on validation; the optimistic numbers (best
epoch chosen on test) are not compared.

>>> rows = [{"model": "fcn5", "preset": "fcn5-paper", "store": "s/mtat.zarr", "feature": "mel96", "task": "multi-label", "n": 1,
...          "roc_auc": 0.9, "roc_auc_std": 0.0, "pr_auc": 0.4, "pr_auc_std": 0.0, "parameters": 447732, "hours": 2.0}]
>>> print(markdown(rows).splitlines()[4])
| fcn5 | mtat.zarr | fcn5-paper | mel96 | 1 | 0.900 ± 0.000 | 0.400 ± 0.000 | 447,732 | 2.00 |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
from rich.markup import escape
from rich.table import Table

from mrnet.core.errors import UserError
from mrnet.train.evaluate import mean_std
from mrnet.train.runs import RunFolder, write_json
from mrnet.train.tasks import HEADLINE, SINGLE, TASK_NAMES, label, task_of

NOTE = ("Test numbers of checkpoints chosen on validation only; n counts folds and seeds, ± is the sample standard deviation "
        "(0 for a single run).")


@dataclass
class Group:
    """The runs of one model and preset on one store (one task: the store's)."""

    model: str
    preset: str
    store: str
    dataset: str
    feature: str
    task: str = SINGLE
    runs: list[str] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)  # headline metric -> one value per fold or single-split run
    parameters: int | None = None
    seconds: float = 0.0

    def add(self, report: dict) -> None:
        for metric in HEADLINE[self.task]:
            self.scores.setdefault(metric, []).append(report["test"][metric])

    def summary(self) -> dict:
        row = {"model": self.model, "preset": self.preset, "store": self.store, "dataset": self.dataset, "feature": self.feature,
               "task": self.task, "n": len(self.scores[HEADLINE[self.task][0]])}
        for metric in HEADLINE[self.task]:
            row[metric], row[f"{metric}_std"] = mean_std(self.scores[metric])
        return row | {"parameters": self.parameters, "hours": self.seconds / 3600, "runs": self.runs}


def find_runs(paths: list[Path]) -> list[RunFolder]:
    """Finished runs at or directly under ``paths`` (the folds of a ``--folds all`` run stay inside it)."""
    found = []
    for path in paths:
        run = RunFolder(Path(path))
        if run.config_file.exists():
            found.append(run)
        elif Path(path).is_dir():
            found += [RunFolder(p) for p in sorted(Path(path).iterdir()) if (p / "config.json").exists()]
        else:
            raise UserError(f"{path} is neither a run folder nor a folder of runs")
    finished = [r for r in found if r.finished]
    if not finished:
        raise UserError(f"no finished runs in {', '.join(map(str, paths))}: a run is finished once it has a report.json")
    return finished


def compare(paths: list[Path]) -> list[dict]:
    """One summary row per (model, preset, store), genre stores first, then in the order the groups are met."""
    groups: dict[tuple[str, str, str], Group] = {}
    for run in find_runs(paths):
        report, cfg = run.report(), run.config()
        model, preset = getattr(cfg, "model", "mrnet"), getattr(cfg, "preset", "")
        group = groups.setdefault((model, preset, report["store"]), Group(model, preset, report["store"], report.get("dataset", ""),
                                                                          report.get("feature", ""), task_of(report)))
        group.runs.append(str(run.path))
        folds = [run.fold(k) for k in range(report["n"])] if "folds" in report else [run]
        for part in folds:
            r = part.report()
            group.add(r)
            group.parameters = r.get("model", {}).get("parameters", group.parameters)
            group.seconds += sum(m.get("seconds", 0.0) for m in part.metrics())
    rows = [g.summary() for g in groups.values()]
    return sorted(rows, key=lambda r: list(HEADLINE).index(r["task"]))  # stable: the met order within a task


def by_task(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of each task present, genre stores first (a row without ``task`` is a genre row, as written before tags)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r.get("task", SINGLE), []).append(r)
    return {t: out[t] for t in HEADLINE if t in out}


def _cell(metric: str, mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if metric == "accuracy" else f"{mean:.3f} ± {std:.3f}"


def _header(metric: str) -> str:
    return f"test {label(metric)}" + (" %" if metric == "accuracy" else "")


def markdown(rows: list[dict]) -> str:
    """``comparison.md``: one table per task (a heading names each task when there are two)."""
    tasks = by_task(rows)
    lines = ["# Model comparison", ""]
    for task, group in tasks.items():
        first, second = HEADLINE[task]
        if len(tasks) > 1:
            lines += [f"## {TASK_NAMES[task]} ({task} stores: test {label(first)} and {label(second)})", ""]
        lines += [f"| model | store | preset | feature | n | {_header(first)} | {_header(second)} | parameters | training hours |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in group:
            lines.append(f"| {r['model']} | {Path(r['store']).name} | {r.get('preset', '')} | {r['feature']} | {r['n']} | "
                         f"{_cell(first, r[first], r[f'{first}_std'])} | {_cell(second, r[second], r[f'{second}_std'])} | "
                         f"{r['parameters']:,} | {r['hours']:.2f} |")
        lines.append("")
    return "\n".join([*lines, NOTE, "", "![comparison](comparison.png)", ""])


def console_tables(rows: list[dict]) -> list[Table]:
    """The terminal's view of the comparison: one Rich table per task."""
    tables = []
    for task, group in by_task(rows).items():
        first, second = HEADLINE[task]
        table = Table(title=f"model comparison, {task} (test, checkpoints chosen on validation)")
        for col in ("model", "store", "preset", "n", label(first), label(second), "parameters", "hours"):
            table.add_column(col, justify="left" if col in ("model", "store", "preset") else "right")
        for r in group:
            table.add_row(r["model"], escape(Path(r["store"]).name), r.get("preset", ""), str(r["n"]), _cell(first, r[first], r[f"{first}_std"]),
                          _cell(second, r[second], r[f"{second}_std"]), f"{r['parameters']:,}", f"{r['hours']:.2f}")
        tables.append(table)
    return tables


def _label(r: dict) -> str:
    return f"{r['model']}\n{Path(r['store']).stem}"


def figure(rows: list[dict]) -> Figure:
    """Each task's two headline metrics per model and store (one row of two panels per task), the spread as error bars,
    the value written on each bar."""
    tasks = by_task(rows)
    widest = max(len(g) for g in tasks.values())
    fig = Figure(figsize=(max(7.0, 1.0 * widest + 4), 4.8 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for (task, group), pair in zip(tasks.items(), axes):
        for ax, metric in zip(pair, HEADLINE[task]):
            scale = 100 if metric == "accuracy" else 1  # accuracy in %, as the table gives it
            values = [scale * r[metric] for r in group]
            spread = [scale * r[f"{metric}_std"] if r["n"] > 1 else float("nan") for r in group]  # no bar for a single run
            bars = ax.bar(range(len(group)), values, yerr=spread, capsize=4, color="tab:blue" if task == SINGLE else "tab:green")
            text = [f"{v:.1f}" if metric == "accuracy" else f"{v:.2f}" for v in values]
            tall = [v >= 0.12 * scale for v in values]  # a short bar's value goes above it, in black
            ax.bar_label(bars, labels=[t if big else "" for t, big in zip(text, tall)], label_type="center", color="white", fontsize="small")
            ax.bar_label(bars, labels=["" if big else t for t, big in zip(text, tall)], label_type="edge", padding=2, fontsize="small")
            ax.set_xticks(range(len(group)), [_label(r) for r in group], rotation=45, ha="right", fontsize="small")
            ax.set_xlim(-0.6, max(len(group), 4) - 0.4)  # a lone bar keeps a bar's width
            ax.set_ylim(0, scale)
            ax.set_ylabel("%" if metric == "accuracy" else label(metric))
            ax.set_title(f"test {label(metric)}" + (f" ({task})" if len(tasks) > 1 else ""))
            ax.grid(axis="y", alpha=0.3)
    return fig


def write(rows: list[dict], folder: Path) -> Path:
    """comparison.md, comparison.json and comparison.png in ``folder``; returns the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "comparison.json", rows)
    figure(rows).savefig(folder / "comparison.png", dpi=100)
    (folder / "comparison.md").write_text(markdown(rows))
    return folder / "comparison.md"


__all__ = ["Group", "by_task", "compare", "console_tables", "find_runs", "markdown", "write"]
