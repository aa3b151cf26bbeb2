"""Finished runs side by side: one row per model and store, mean and spread over folds and seeds.

``compare(paths)`` reads run folders (a run, a ``--folds all`` run, or a folder holding runs),
groups them by model and store, and gives each group the mean and sample standard deviation of its
test numbers: every fold of a cross-validation run and every single-split run (another seed) counts
once. Parameter counts and training time (the sum of the runs' epoch times) come with them.
``write(comparison, folder)`` writes ``comparison.md``, ``comparison.json`` and ``comparison.png``.

Every number is a test number of a checkpoint chosen on validation; the optimistic numbers (best
epoch chosen on test) are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from mrnet.core.errors import UserError
from mrnet.train.evaluate import mean_std
from mrnet.train.runs import RunFolder, write_json


@dataclass
class Group:
    """The runs of one model on one store."""

    model: str
    store: str
    dataset: str
    feature: str
    runs: list[str] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # one value per fold or single-split run
    macro_f1: list[float] = field(default_factory=list)
    parameters: int | None = None
    seconds: float = 0.0

    def summary(self) -> dict:
        acc, f1 = mean_std(self.accuracy), mean_std(self.macro_f1)
        return {"model": self.model, "store": self.store, "dataset": self.dataset, "feature": self.feature, "n": len(self.accuracy),
                "accuracy": acc[0], "accuracy_std": acc[1], "macro_f1": f1[0], "macro_f1_std": f1[1],
                "parameters": self.parameters, "hours": self.seconds / 3600, "runs": self.runs}


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
    """One summary row per (model, store), in the order the groups are first met."""
    groups: dict[tuple[str, str], Group] = {}
    for run in find_runs(paths):
        report, cfg = run.report(), run.config()
        model = getattr(cfg, "model", "mrnet")
        group = groups.setdefault((model, report["store"]), Group(model, report["store"], report.get("dataset", ""), report.get("feature", "")))
        group.runs.append(str(run.path))
        folds = [run.fold(k) for k in range(report["n"])] if "folds" in report else [run]
        for part in folds:
            r = part.report()
            group.accuracy.append(r["test"]["accuracy"])
            group.macro_f1.append(r["test"]["macro_f1"])
            group.parameters = r.get("model", {}).get("parameters", group.parameters)
            group.seconds += sum(m.get("seconds", 0.0) for m in part.metrics())
    return [g.summary() for g in groups.values()]


def markdown(rows: list[dict]) -> str:
    lines = ["| model | store | feature | n | test accuracy % | test macro-F1 | parameters | training hours |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {Path(r['store']).name} | {r['feature']} | {r['n']} | {100 * r['accuracy']:.1f} ± {100 * r['accuracy_std']:.1f} | "
                     f"{r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f} | {r['parameters']:,} | {r['hours']:.2f} |")
    note = ("Test numbers of checkpoints chosen on validation only; n counts folds and seeds, ± is the sample standard deviation "
            "(0 for a single run).")
    return "\n".join(["# Model comparison", "", *lines, "", note, "", "![comparison](comparison.png)", ""])


def figure(rows: list[dict]) -> Figure:
    """Test accuracy and macro-F1 per model and store, with the spread as error bars."""
    fig = Figure(figsize=(max(6.0, 1.1 * len(rows) + 3), 4.5))
    axes = fig.subplots(1, 2)
    labels = [f"{r['model']}\n{Path(r['store']).stem}" for r in rows]
    for ax, key, title in ((axes[0], "accuracy", "test accuracy"), (axes[1], "macro_f1", "test macro-F1")):
        ax.bar(range(len(rows)), [r[key] for r in rows], yerr=[r[f"{key}_std"] for r in rows], capsize=4, color="tab:blue")
        ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize="small")
        ax.set_ylim(0, 1)
        ax.set_title(title)
    return fig


def write(rows: list[dict], folder: Path) -> Path:
    """comparison.md, comparison.json and comparison.png in ``folder``; returns the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "comparison.json", rows)
    figure(rows).savefig(folder / "comparison.png", dpi=100, bbox_inches="tight")
    (folder / "comparison.md").write_text(markdown(rows))
    return folder / "comparison.md"


__all__ = ["Group", "compare", "find_runs", "markdown", "write"]
