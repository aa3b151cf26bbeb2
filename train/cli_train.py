"""``mrnet-train``: parses its options (declared in ``cli_options``), builds a config and calls
``launch.train`` or ``launch.resume``; shows the result, or how to resume an interrupted run."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mrnet.core.cli import parse_gpus, parse_ints
from mrnet.core.errors import UserError, report_user_errors
from mrnet.train import cli_options as opt
from mrnet.train.display import RichReporter
from mrnet.train.formats import parse_formats
from mrnet.train.loop import Interrupted
from mrnet.train.presets import another_models_recipe, default_preset, preset
from mrnet.train.runs import RunFolder, default_run_dir

#: what --resume may change: where the store is, the machine, and --epochs (more: the run is extended)
RESUMABLE = {"store", "check_reads", "num_workers", "device", "workers", "gpus", "scheduler", "epochs"}

train_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


def rich_reporter() -> RichReporter:
    """Rank 0's reporter in a process of its own (launch.spawn): progress on this terminal."""
    return RichReporter(Console())


@train_app.command(cls=opt.TrainCommand)
@report_user_errors
def train(
    store: opt.Store = None,
    resume: opt.Resume = None,
    out: opt.Out = None,
    fold: opt.Fold = None,
    folds: opt.Folds = None,
    layer: opt.Layer = None,
    preset_name: opt.Preset = None,
    model: opt.Model = None,
    width: opt.Width = None,
    embed_dim: opt.EmbedDim = None,
    variant: opt.Variant = None,
    drop_route: opt.DropRoute = None,
    dropout: opt.Dropout = None,
    model_option: opt.ModelOption = None,
    normalize: opt.Normalize = None,
    epochs: opt.Epochs = None,
    batch_size: opt.BatchSize = None,
    crop_seconds: opt.CropSeconds = None,
    optimizer: opt.Optimizer = None,
    lr: opt.Lr = None,
    schedule: opt.Schedule = None,
    lr_min: opt.LrMin = None,
    stage: opt.Stage = None,
    weight_decay: opt.WeightDecay = None,
    amsgrad: opt.Amsgrad = None,
    class_weights: opt.ClassWeights = None,
    epoch_mode: opt.EpochMode = None,
    pos_weight: opt.PosWeight = None,
    augment: opt.Augment = None,
    noise_p: opt.NoiseP = None,
    time_masks: opt.TimeMasks = None,
    time_mask_frac: opt.TimeMaskFrac = None,
    feature_masks: opt.FeatureMasks = None,
    feature_mask_frac: opt.FeatureMaskFrac = None,
    time_flip: opt.TimeFlip = None,
    select_metric: opt.SelectMetric = None,
    patience: opt.Patience = None,
    min_delta: opt.MinDelta = None,
    eval_unit: opt.EvalUnit = None,
    eval_every: opt.EvalEvery = None,
    eval_batch_size: opt.EvalBatchSize = None,
    test_curve: opt.TestCurve = None,
    workers: opt.Workers = None,
    gpus: opt.Gpus = None,
    scheduler: opt.Scheduler = None,
    sync_bn: opt.SyncBn = None,
    check_reads: opt.CheckReads = None,
    num_workers: opt.NumWorkers = None,
    device: opt.Device = None,
    bf16: opt.Bf16 = None,
    seed: opt.Seed = None,
    fmt: opt.Format = None,
    seeds: opt.Seeds = None,
    show_config: opt.ShowConfig = False,
) -> None:
    """Train MRNet, or a baseline, on a feature store and report honest test metrics (checkpoint chosen on validation).

    A default of (preset) comes from --preset; --show-config prints the config a preset and your options make.
    """
    from mrnet.train import launch

    console = Console()
    formats = parse_formats(fmt)  # a wrong format fails now, not after training
    own = {
        k: v
        for k, v in dict(
            width=width,
            embed_dim=embed_dim,
            variant=variant and variant.value,
            dropout=dropout,
            drop_routes=tuple(r.value for r in drop_route) if drop_route else None,
        ).items()
        if v is not None
    }
    options = dict(
        model=model and model.value,
        normalize=normalize and normalize.value,
        fold=fold,
        all_folds=True if folds else None,
        out=str(out) if out else None,
        layers=tuple(layer) if layer else None,
        model_options={**own, **(opt.model_options(model_option) or {})} or None,
        epochs=epochs,
        batch_size=batch_size,
        crop_seconds=crop_seconds,
        optimizer=optimizer and optimizer.value,
        lr=lr,
        schedule=schedule and schedule.value,
        lr_min=lr_min,
        stages=opt.stages(stage),
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        pos_weight=pos_weight,
        class_weights=class_weights and class_weights.value,
        epoch_mode=epoch_mode and epoch_mode.value,
        augment=augment,
        noise_p=noise_p,
        time_masks=time_masks,
        time_mask_frac=time_mask_frac,
        feature_masks=feature_masks,
        feature_mask_frac=feature_mask_frac,
        time_flip=time_flip,
        select_metric=select_metric and select_metric.value,
        patience=patience,
        min_delta=min_delta,
        eval_unit=eval_unit,
        eval_every=eval_every,
        eval_batch_size=eval_batch_size,
        test_curve=test_curve,
        check_reads=check_reads,
        num_workers=num_workers,
        device=device,
        bf16=bf16,
        seed=seed,
        seeds=parse_ints(seeds, "--seeds"),
        workers=workers,
        gpus=parse_gpus(gpus),
        scheduler=scheduler,
        sync_bn=sync_bn,
    )
    reporter = RichReporter(console)
    options = {k: v for k, v in options.items() if v is not None}  # what the user set; the preset gives the rest
    action: Callable[[], Path | None]
    if resume is not None:
        _refuse_changes(options, own, model_option, preset_name)
        run_dir = resume
        changes = {k: options.get(k) for k in RESUMABLE if k != "store"}
        action = lambda: launch.resume(  # noqa: E731
            resume, store=store, reporter=reporter, reporter_factory=rich_reporter, **changes
        )
    else:
        if store is None:
            raise UserError(
                "give --store PATH_OR_URL (a store written by mrnet-extract), or --resume RUN to continue a run"
            )
        cfg = preset(preset_name.value if preset_name else default_preset(model and model.value), store, **options)
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg.store)
        cfg = cfg.with_(out=str(run_dir))
        if (
            show_config
        ):  # every value resolved: the store's feature and task decide normalisation, selection and evaluation
            from mrnet.train.setup import resolved

            typer.echo(json.dumps(resolved(cfg).to_json(), indent=2))
            return
        other = another_models_recipe(cfg)
        if other:
            reporter.note(other)
        action = lambda: launch.train(cfg, reporter=reporter, reporter_factory=rich_reporter)  # noqa: E731
    path = _run(action, run_dir, console)
    if path is not None:  # None: a torchrun process other than rank 0, where rank 0 shows the result
        _show_result(path, formats, console)


def _refuse_changes(
    options: dict[str, Any], own: dict[str, Any], model_option: list[str] | None, preset_name: Any
) -> None:
    """--resume continues a run with its own config.json: anything but ``RESUMABLE`` is refused, by its flag."""
    given = sorted(k for k in options if k not in RESUMABLE)
    if given or preset_name is not None:
        flags = [k for k in given if k != "model_options"] + list(own) + (["model_option"] if model_option else [])
        names = ", ".join(
            "--" + {"drop_routes": "drop_route"}.get(k, k).replace("_", "-")
            for k in flags + (["preset"] if preset_name is not None else [])
        )
        raise UserError(
            f"--resume continues the run with its own config.json; {names} cannot change. Start a new run to change them."
        )


def _run(action: Callable[[], Path | None], run_dir: Path, console: Console) -> Path | None:
    """Run ``action``; Ctrl-C says how to resume (exit 130), a full disk that every finished epoch is kept."""
    try:
        return action()
    except (Interrupted, KeyboardInterrupt) as stop:
        if not (Path(run_dir) / "config.json").exists():
            console.print("[yellow]interrupted[/] before the run started; nothing to resume.")
            raise typer.Exit(130) from None
        if not any(Path(run_dir).glob("**/checkpoints/last.pt")):  # a run's own, or a fold's
            saved = "stopped before the first checkpoint; resuming starts the run again from the beginning"
        else:
            saved = f"{stop}" if isinstance(stop, Interrupted) else "stopped; the last end-of-epoch checkpoint is kept"
        console.print(
            f"[yellow]interrupted:[/] {escape(saved)}\nResume with: [bold]mrnet-train --resume {escape(str(run_dir))}[/]",
            highlight=False,
        )
        raise typer.Exit(130) from None
    except OSError as err:  # a full disk: what finished is kept, and the run continues with --resume (not a new run)
        if err.errno not in (errno.ENOSPC, errno.EDQUOT) or not (Path(run_dir) / "config.json").exists():
            raise
        raise UserError(
            f"no space left writing {err.filename or 'the run folder'}: every finished epoch of {run_dir} is kept. "
            f"Free some space, then continue the run: mrnet-train --resume {run_dir}"
        ) from err


def _show_result(path: Path, formats: tuple[str, ...], console: Console) -> None:
    """The summary table of a finished run (or its seeds), its figures in every format asked for."""
    from mrnet.train import report
    from mrnet.train import seeds as seeds_report

    result = RunFolder(path).report()
    if formats != ("png",):  # the figures again, in every format asked for (a seeds run: each seed's)
        for one in (
            [path / seeds_report.SEED_DIR.format(s["seed"]) for s in result["seeds"]] if "seeds" in result else [path]
        ):
            report.rerender(one, formats)
    console.print(seeds_report.summary_table(result) if "seeds" in result else report.summary_table(result))
    console.print(
        f"Report: {escape(str(path / 'report.md'))}  (mrnet-report {escape(str(path))} re-renders it)", highlight=False
    )
