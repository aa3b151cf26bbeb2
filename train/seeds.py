"""One configuration once per seed (``mrnet-train ... --seeds 0,1,2``), into one folder, reported as
the mean and spread over the seeds.

The folder holds ``config.json`` (the configuration, its ``seeds`` listed), one ordinary run folder per
seed (``seed-<s>/``, each resumable and comparable on its own) and, once every seed has finished,
``report.json`` and ``report.md``: each seed's test numbers, their mean and sample standard deviation.
The seeds run in turn, or side by side as independent runs (``parallel.run_parallel``) with
``--workers N`` (N > 1), ``--gpus a,b`` or ``--scheduler``, as the folds of ``--folds all`` do; with
``--folds all`` each seed is a cross-validation of its own and its folds take the scale options.
``mrnet-train --resume DIR`` continues the seeds that have not finished.

The report also gives, for each headline metric, the 95 % bootstrap interval over test tracks of its
mean over the seeds, from the seeds' pooled test predictions (``predictions.pooled_intervals``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from mrnet.core.errors import UserError
from mrnet.train import events as tensorboard
from mrnet.train import parallel, predictions
from mrnet.train.config import TrainConfig, required
from mrnet.train.evaluate import mean_std
from mrnet.train.loop import Reporter
from mrnet.train.runs import RunFolder, default_run_dir, write_json
from mrnet.train.tasks import HEADLINE, label, show, task_of

#: what a seed's folder is called
SEED_DIR = "seed-{}"


def seed_configs(cfg: TrainConfig, run: Path) -> dict[int, TrainConfig]:
    """Each seed's config: ``cfg`` with that seed, in its own folder, no seed list; side by side (one run
    per worker or GPU) a seed trains in one process, else it keeps the scale options (one seed's own processes)."""
    side_by_side = parallel.wanted(cfg) and not cfg.all_folds
    scale = {"workers": None, "gpus": (), "scheduler": None} if side_by_side else {}
    return {s: cfg.with_(seed=s, seeds=(), out=str(run / SEED_DIR.format(s)), **scale) for s in cfg.seeds}


def train_seeds(
    cfg: TrainConfig,
    *,
    reporter: Reporter | None = None,
    resume: bool = False,
    train_one: Callable[[TrainConfig], object],
    resume_one: Callable[[Path], object],
) -> Path:
    """Train (or continue) every seed of ``cfg.seeds`` in ``cfg.out``; returns the folder once all have
    finished and the report is written. ``train_one`` / ``resume_one``: how one run starts or continues
    in turn (``launch.train`` / ``launch.resume``)."""
    reporter = reporter or Reporter()
    run = RunFolder(Path(cfg.out) if cfg.out else default_run_dir(cfg.store))
    if not resume:
        if run.config_file.exists():
            raise UserError(
                f"{run.path} already holds a run. Continue it with mrnet-train --resume {run.path}, or pass another --out."
            )
        cfg = cfg.with_(out=str(run.path))
        run.path.mkdir(parents=True, exist_ok=True)
        write_json(run.config_file, cfg.to_json())
    todo = {
        s: c for s, c in seed_configs(cfg, run.path).items() if not RunFolder(Path(required(c.out, "out"))).finished
    }
    if todo and parallel.wanted(cfg) and not cfg.all_folds:
        reporter.note(f"{len(todo)} of {len(cfg.seeds)} seeds to train, side by side")
        device = "cuda" if cfg.gpus else "cpu" if cfg.workers else cfg.device
        failed = parallel.run_parallel(
            [c.with_(device=device) for c in todo.values()],
            workers=cfg.workers,
            gpus=cfg.gpus,
            scheduler=cfg.scheduler,
            reporter=reporter,
        )
        if failed:
            lines = "\n".join(f"  - {name}: {error}" for name, error in failed.items())
            raise UserError(
                f"{len(failed)} of {len(cfg.seeds)} seeds of {run.path} failed (the others are kept):\n{lines}\n"
                f"Fix the cause and continue them with: mrnet-train --resume {run.path}"
            )
    else:
        for seed, sub in todo.items():
            reporter.note(f"seed {seed} ({list(cfg.seeds).index(seed) + 1} of {len(cfg.seeds)}): {sub.out}")
            folder = Path(required(sub.out, "out"))
            if (folder / "config.json").exists():
                resume_one(folder)
            else:
                train_one(sub)
    tensorboard.log_result(run.path, write_report(run, cfg), step=0)  # the seeds' mean beside each seed's own
    return run.path


def seed_row(seed: int, report: dict) -> dict:
    """One seed's numbers: its test (and validation) headline metrics; a ``--folds all`` seed's fold means."""
    first, second = HEADLINE[task_of(report)]
    if "folds" in report:
        m = report["mean"]
        return {
            "seed": seed,
            "best_epoch": None,
            f"valid_{first}": m.get(f"valid_{first}"),
            f"test_{first}": m.get(f"test_{first}"),
            f"test_{second}": m.get(f"test_{second}"),
        }
    return {
        "seed": seed,
        "best_epoch": report["selection"]["epoch"],
        f"valid_{first}": report["valid"][first],
        f"test_{first}": report["test"][first],
        f"test_{second}": report["test"][second],
    }


def write_report(run: RunFolder, cfg: TrainConfig) -> dict:
    """report.json and report.md of a seeds folder whose seeds have all finished."""
    reports = {s: RunFolder(run.path / SEED_DIR.format(s)).report() for s in cfg.seeds}
    first = reports[cfg.seeds[0]]
    rows = [seed_row(s, r) for s, r in reports.items()]
    mean, std = {}, {}
    for key in [k for k in rows[0] if k not in ("seed", "best_epoch")]:
        values = [r[key] for r in rows]
        if all(v is not None for v in values):
            mean[key], std[key] = mean_std(values)
    report = {
        "run": str(run.path),
        "store": first["store"],
        "dataset": first["dataset"],
        "feature": first["feature"],
        "task": task_of(first),
        "split": first["split"],
        "config": {**first["config"], "seed": None, "seeds": list(cfg.seeds)},
        "seeds": rows,
        "n": len(rows),
        "mean": mean,
        "std": std,
        "training_seconds": round(sum(r.get("training_seconds", 0.0) for r in reports.values()), 1),
        # the 95 % interval of each headline metric's mean over the seeds, from their pooled test predictions
        "pooled": predictions.pooled_intervals(
            [run.path / SEED_DIR.format(s) for s in cfg.seeds], HEADLINE[task_of(first)]
        ),
    }
    write_json(run.report_file, report)
    (run.path / "report.md").write_text(markdown(report))
    return report


def rerender(run: RunFolder) -> dict:
    """``mrnet-report DIR`` of a seeds folder: its report written again from the seeds' own."""
    cfg = run.config()
    unfinished = [s for s in cfg.seeds if not RunFolder(run.path / SEED_DIR.format(s)).finished]
    if unfinished:
        raise UserError(
            f"{run.path}: seed(s) {', '.join(map(str, unfinished))} have not finished; continue them with mrnet-train --resume {run.path}"
        )
    return write_report(run, cfg)


def markdown(report: dict) -> str:
    first, second = HEADLINE[task_of(report)]
    m, s = report["mean"], report["std"]
    lines = [
        f"# {report['config'].get('model', 'mrnet')} on {report['dataset'] or report['store']}, {report['n']} seeds",
        "",
        f"- store: `{report['store']}` ({report['feature']}); {report['split']}; preset {report['config'].get('preset')}; "
        f"seeds {', '.join(map(str, report['config']['seeds']))}",
        "",
        f"**Test {label(first)} {show(first, m.get(f'test_{first}'))} ± {show(first, s.get(f'test_{first}'))}, "
        f"{label(second)} {show(second, m.get(f'test_{second}'))} ± {show(second, s.get(f'test_{second}'))}** "
        f"(mean ± sample standard deviation over {report['n']} seeds; each seed's checkpoint chosen on validation).",
        "",
        *_pooled_lines(report),
        f"| seed | epoch | valid {label(first)} | test {label(first)} | test {label(second)} |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['seed']} | {r['best_epoch'] or ''} | {show(first, r[f'valid_{first}'])} | {show(first, r[f'test_{first}'])} | "
        f"{show(second, r[f'test_{second}'])} |"
        for r in report["seeds"]
    ]
    return "\n".join(lines) + "\n"


def _pooled_lines(report: dict) -> list[str]:
    pooled = report.get("pooled")
    if not pooled:
        return []
    shown = ", ".join(f"{label(m)} [{show(m, lo)}, {show(m, hi)}]" for m, (lo, hi) in pooled["interval"].items())
    return [
        f"95 % interval of the seeds' mean over the {pooled['tracks']} test tracks (bootstrap of their pooled predictions): {shown}.",
        "",
    ]


def summary_table(report: dict) -> Table:
    """The table the CLI prints at the end of a seeds run."""
    first, second = HEADLINE[task_of(report)]
    table = Table(title=f"{report['n']} seeds - test metrics of validation-selected checkpoints")
    for col in ("seed", "epoch", f"valid {label(first)}", f"test {label(first)}", f"test {label(second)}"):
        table.add_column(col, justify="right")
    for r in report["seeds"]:
        table.add_row(
            str(r["seed"]),
            str(r["best_epoch"] or ""),
            show(first, r[f"valid_{first}"]),
            show(first, r[f"test_{first}"]),
            show(second, r[f"test_{second}"]),
        )
    m, s = report["mean"], report["std"]
    pooled = (report.get("pooled") or {}).get("interval", {})
    if pooled:
        table.caption = "95 % interval of the mean over test tracks: " + ", ".join(
            f"{label(k)} [{show(k, lo)}, {show(k, hi)}]" for k, (lo, hi) in pooled.items()
        )
    table.add_row(
        "mean ± std",
        "",
        *(
            f"{show(metric, m.get(key))} ± {show(metric, s.get(key))}"
            for key, metric in ((f"valid_{first}", first), (f"test_{first}", first), (f"test_{second}", second))
        ),
        style="bold",
    )
    return table
