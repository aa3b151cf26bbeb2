"""``mrnet-train``, ``mrnet-predict`` and ``mrnet-report``: thin command lines over ``mrnet.train``.

Each command parses its options, builds a config and calls one library function
(``loop.train`` / ``loop.resume``, ``predict.Predictor``, ``report.rerender``).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mrnet.core.cli import Command
from mrnet.core.errors import UserError, report_user_errors
from mrnet.train.config import NORMALIZE_MODES
from mrnet.train.presets import PRESETS, preset
from mrnet.train.models import MODELS
from mrnet.train.loop import Interrupted, Reporter
from mrnet.train.models.mrnet import ROUTES, VARIANTS
from mrnet.train.report import pct
from mrnet.train.runs import RunFolder, default_run_dir

Preset = Enum("Preset", {n: n for n in PRESETS}, type=str)
Model = Enum("Model", {n: n for n in MODELS}, type=str)
Normalize = Enum("Normalize", {n: n for n in NORMALIZE_MODES}, type=str)
Variant = Enum("Variant", {n: n for n in VARIANTS}, type=str)
Route = Enum("Route", {n: n for n in ROUTES}, type=str)


class Folds(str, Enum):
    all = "all"


class SelectMetric(str, Enum):
    accuracy = "accuracy"
    macro_f1 = "macro_f1"


RESUMABLE = {"store", "num_workers", "device"}  # what --resume may change: where the store is, and the machine


class RichReporter(Reporter):
    """A line per epoch above a live bar (epochs with ETA, batches with loss) that disappears at the end."""

    def __init__(self, con: Console):
        self.console = con
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=con, transient=True,
        )

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {escape(text)}", highlight=False)

    def start(self, *, run: Path, description: str, epochs: int, done: int, steps: int) -> None:
        self.console.print(f"[bold]{escape(str(run))}[/]: {escape(description)}, {epochs} epochs of {steps} batches", highlight=False)
        self.total = epochs
        self.progress.start()
        self.epochs = self.progress.add_task("epoch", total=epochs, completed=done, info="")
        self.batches = self.progress.add_task("batch", total=steps, info="")

    def batch(self, *, epoch: int, step: int, steps: int, loss: float) -> None:
        self.progress.update(self.batches, completed=step, info=f"loss {loss:.3f}")

    def epoch(self, r: dict) -> None:
        info = f"loss {r['train_loss']:.3f}"
        if "valid_accuracy" in r:
            info += f" | valid {pct(r['valid_accuracy'])} F1 {r['valid_macro_f1']:.3f}"
        self.progress.update(self.epochs, completed=r["epoch"], info=info)
        self.progress.reset(self.batches, info="")
        best = " [green]best[/]" if r.get("best") else ""
        step = f"C {r['C']:g}" if "C" in r else f"lr {r['lr']:.1e}"  # the linear probe's rounds are values of C
        self.console.print(f"epoch {r['epoch']}/{self.total}  {info}  train {pct(r['train_accuracy'])}  {step}{best}", highlight=False)

    def end(self) -> None:
        self.progress.stop()


# --- mrnet-train --------------------------------------------------------------------------------

train_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@train_app.command()
@report_user_errors
def train(
    store: Annotated[Optional[str], typer.Option(help="Feature store: a path or URL (s3://...). With --resume: where the run's store is now.")] = None,
    preset_name: Annotated[Preset, typer.Option("--preset", help="paper: the authors' recipe; tiny: a first run on a CPU (minutes); small: a few hundred real tracks on a CPU.")] = Preset.paper,
    model: Annotated[Optional[Model], typer.Option(help="mrnet (default), or linear: the linear probe every result is read against (its own recipe, docs/training.md).")] = None,
    normalize: Annotated[Optional[Normalize], typer.Option(help="Input normalisation: instance (per track over time, the authors'), stored (each feature standardised with the training split's statistics from the store), global (one mean and std over every feature: MusicNeXt's) or none. Default: the model's recipe, else by feature kind (Mel: none; WavLM: instance).")] = None,
    fold: Annotated[Optional[int], typer.Option(help="Train fold K of a k-fold store (test = K, valid = K+1).")] = None,
    folds: Annotated[Optional[Folds], typer.Option(help="all: train every fold, report mean and standard deviation.")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue this run folder exactly where it stopped.", exists=True, file_okay=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default: runs/STORE-YYYYmmdd-HHMMSS).")] = None,
    variant: Annotated[Optional[Variant], typer.Option(help="Mid routes: paper (Eq. 4, default) or authors (their released code).")] = None,
    drop_route: Annotated[Optional[list[Route]], typer.Option(help="Leave a route out (repeatable): the paper's Table 3 ablation.")] = None,
    layer: Annotated[Optional[list[int]], typer.Option(help="Feed only these stored layers (repeatable) (default: all).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="(default paper: 1000, tiny: 40)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="(default paper: 48, tiny: 16)")] = None,
    crop_seconds: Annotated[Optional[float], typer.Option(help="Training crop length (default paper: 6, tiny: 3).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Initial learning rate (default 1e-3).")] = None,
    lr_min: Annotated[Optional[float], typer.Option(help="Learning rate the cosine ends at (default 5e-4).")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay (default 1e-4).")] = None,
    amsgrad: Annotated[Optional[bool], typer.Option("--amsgrad/--no-amsgrad", help="AdamW amsgrad (default on).")] = None,
    channels: Annotated[Optional[int], typer.Option(help="Model width C (default paper: 512, tiny: 32).")] = None,
    embed_dim: Annotated[Optional[int], typer.Option(help="Embedding size (default paper: 128, tiny: 32).")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="(default 0.5)")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Feature noise and time/feature masks (default on).")] = None,
    noise_p: Annotated[Optional[float], typer.Option(help="Probability of Gaussian feature noise per crop (default 0.7).")] = None,
    time_masks: Annotated[Optional[int], typer.Option(help="Time masks per crop, at most (default 2).")] = None,
    time_mask_frac: Annotated[Optional[float], typer.Option(help="Longest time mask, as a fraction of the crop (default 0.1).")] = None,
    feature_masks: Annotated[Optional[int], typer.Option(help="Feature masks per crop, at most (default 2).")] = None,
    feature_mask_frac: Annotated[Optional[float], typer.Option(help="Widest feature mask, as a fraction of the features (default 0.1).")] = None,
    select_metric: Annotated[Optional[SelectMetric], typer.Option(help="Validation metric that picks the checkpoint (default accuracy).")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="Epochs between evaluations (default 1).")] = None,
    eval_batch_size: Annotated[Optional[int], typer.Option(help="Whole tracks of equal length per evaluation batch (default paper: 8, tiny: 16).")] = None,
    test_curve: Annotated[Optional[bool], typer.Option("--test-curve/--no-test-curve", help="Also evaluate test each time (curve and optimistic number) (default on).")] = None,
    num_workers: Annotated[Optional[int], typer.Option(help="Read with a DataLoader of N worker processes (0: in the training loop) instead of the default: threads of this process reading ahead (2 on CPU; on a GPU half the cores, 2 to 8).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N (default auto).")] = None,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="bfloat16 autocast on GPU (default on).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="(default 0)")] = None,
) -> None:
    """Train MRNet on a feature store and report honest test metrics (checkpoint chosen on validation)."""
    from mrnet.train import loop, report

    console = Console()
    options = dict(model=model and model.value, normalize=normalize and normalize.value, fold=fold, all_folds=True if folds else None, out=str(out) if out else None, variant=variant and variant.value,
                   drop_routes=tuple(r.value for r in drop_route) if drop_route else None, layers=tuple(layer) if layer else None,
                   epochs=epochs, batch_size=batch_size, crop_seconds=crop_seconds, lr=lr, lr_min=lr_min, weight_decay=weight_decay,
                   amsgrad=amsgrad, channels=channels, embed_dim=embed_dim, dropout=dropout, augment=augment,
                   noise_p=noise_p, time_masks=time_masks, time_mask_frac=time_mask_frac, feature_masks=feature_masks,
                   feature_mask_frac=feature_mask_frac,
                   select_metric=select_metric and select_metric.value, eval_every=eval_every, eval_batch_size=eval_batch_size, test_curve=test_curve,
                   num_workers=num_workers, device=device, bf16=bf16, seed=seed)
    reporter = RichReporter(console)
    options = {k: v for k, v in options.items() if v is not None}  # what the user set; the preset gives the rest
    if resume is not None:
        given = sorted(k for k in options if k not in RESUMABLE)
        if given or preset_name != Preset.paper:
            names = ", ".join("--" + k.replace("_", "-") for k in given + (["preset"] if preset_name != Preset.paper else []))
            raise UserError(f"--resume continues the run with its own config.json; {names} cannot change. Start a new run to change them.")
        run_dir = resume
        action = lambda: loop.resume(resume, store=store, num_workers=num_workers, device=device, reporter=reporter)  # noqa: E731
    else:
        if store is None:
            raise UserError("give --store PATH_OR_URL (a store written by mrnet-extract), or --resume RUN to continue a run")
        cfg = preset(preset_name.value, store, **options)
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg.store)
        cfg = cfg.with_(out=str(run_dir))
        action = lambda: loop.train(cfg, reporter=reporter)  # noqa: E731
    try:
        path = action()
    except (Interrupted, KeyboardInterrupt) as stop:
        if not (Path(run_dir) / "config.json").exists():
            console.print("[yellow]interrupted[/] before the run started; nothing to resume.")
            raise typer.Exit(130) from None
        if not any(Path(run_dir).glob("**/checkpoints/last.pt")):  # a run's own, or a fold's
            saved = "stopped before the first checkpoint; resuming starts the run again from the beginning"
        else:
            saved = f"{stop}" if isinstance(stop, Interrupted) else "stopped; the last end-of-epoch checkpoint is kept"
        console.print(f"[yellow]interrupted:[/] {escape(saved)}\nResume with: [bold]mrnet-train --resume {escape(str(run_dir))}[/]", highlight=False)
        raise typer.Exit(130) from None
    console.print(report.summary_table(RunFolder(path).report()))
    console.print(f"Report: {escape(str(path / 'report.md'))}  (mrnet-report {escape(str(path))} re-renders it)", highlight=False)


# --- mrnet-predict ------------------------------------------------------------------------------

predict_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@predict_app.command()
@report_user_errors
def predict(
    run: Annotated[Path, typer.Argument(help="A finished run folder (or one fold-K folder of a --folds all run).", exists=True, file_okay=False)],
    files: Annotated[list[Path], typer.Argument(help="Audio files (anything libsndfile reads: WAV, FLAC, MP3, OGG...).")],
    top: Annotated[int, typer.Option(help="How many genres to show per file.", min=1)] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for machines.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
) -> None:
    """Top genres of audio files, with probabilities, from a run's validation-selected model."""
    from mrnet.train.predict import Predictor, predict_files

    console, errors = Console(), Console(stderr=True)
    results = predict_files(Predictor.open(run, device=device), files, top=top)
    failed = [r for r in results if r.error is not None]
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in failed:
            errors.print(f"[red]failed:[/] {escape(r.error)}", highlight=False)
        table = Table(title=f"mrnet-predict ({escape(str(run))})")
        for col in ("file", "genre", "probability"):
            table.add_column(col, justify="right" if col == "probability" else "left")
        for r in results:
            for i, (genre, p) in enumerate(r.top):
                table.add_row(escape(r.path) if i == 0 else "", genre, f"{100 * p:.1f}%", end_section=i == len(r.top) - 1)
        console.print(table)
        if failed:
            errors.print(f"[red]{len(failed)} of {len(results)} files failed[/] (named above).")
    if failed:
        raise typer.Exit(1)


# --- mrnet-report -------------------------------------------------------------------------------

report_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@report_app.command()
@report_user_errors
def report(
    run: Annotated[Path, typer.Argument(help="A run folder written by mrnet-train.", exists=True, file_okay=False)],
) -> None:
    """Metrics table of a run; rewrites its report.md and plots (PNG)."""
    from mrnet.train import report as reports

    console = Console()
    folder = RunFolder(run)
    folder.config()  # fails clearly on a folder that is not a run
    result = reports.rerender(run)
    if result is None:
        history = folder.metrics()
        last = history[-1] if history else None
        done = f"{last['epoch']} epochs done" if last else "no epoch finished yet"
        console.print(f"[yellow]{escape(str(run))} has not finished ({done}); resume it: mrnet-train --resume {escape(str(run))}[/]", highlight=False)
        if last and "valid_accuracy" in last:
            console.print(f"last epoch: valid accuracy {pct(last['valid_accuracy'])}, macro-F1 {last['valid_macro_f1']:.3f}")
        console.print(f"curves: {escape(str(folder.plots / 'curves.png'))}", highlight=False)
        return
    console.print(reports.summary_table(result))
    console.print(f"Wrote {escape(str(run / 'report.md'))} and plots in {escape(str(folder.plots))}", highlight=False)


# --- mrnet-compare ------------------------------------------------------------------------------

compare_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@compare_app.command(cls=Command)
@report_user_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or folders holding runs (e.g. runs/).", exists=True, show_default=False)],
    out: Annotated[Path, typer.Option(help="Where comparison.md, .json and .png go.")] = Path("comparison"),
) -> None:
    """Finished runs side by side: test accuracy and macro-F1 per model and store, mean ± std over folds and seeds."""
    from mrnet.train import compare as comparing

    rows = comparing.compare(runs)
    table = Table(title="model comparison (test, checkpoints chosen on validation)")
    for col in ("model", "store", "n", "accuracy", "macro-F1", "parameters", "hours"):
        table.add_column(col, justify="left" if col in ("model", "store") else "right")
    for r in rows:
        table.add_row(r["model"], escape(Path(r["store"]).name), str(r["n"]), f"{pct(r['accuracy'])} ± {pct(r['accuracy_std'])}",
                      f"{r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f}", f"{r['parameters']:,}", f"{r['hours']:.2f}")
    Console().print(table)
    Console().print(f"Wrote {escape(str(comparing.write(rows, out)))} and comparison.png", highlight=False)


# --- entry points -------------------------------------------------------------------------------


def _main(app: typer.Typer) -> None:
    try:
        app()
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)


def train_main() -> None:
    """Entry point of ``mrnet-train``."""
    _main(train_app)


def predict_main() -> None:
    """Entry point of ``mrnet-predict``."""
    _main(predict_app)


def report_main() -> None:
    """Entry point of ``mrnet-report``."""
    _main(report_app)


def compare_main() -> None:
    """Entry point of ``mrnet-compare``."""
    _main(compare_app)
