"""``mrnet-train``, ``mrnet-predict`` and ``mrnet-report``: thin command lines over ``mrnet.train``.

Each command parses its options, builds a config and calls one library function
(``loop.train`` / ``loop.resume``, ``predict.Predictor``, ``report.rerender``).
"""

from __future__ import annotations

import errno
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mrnet.core.cli import Command, choices, flag, parse_gpus, parse_ints
from mrnet.core.errors import UserError, report_user_errors
from mrnet.train.cli_results import FORMAT_HELP, compare_app, report_app  # noqa: F401 (mrnet-report, mrnet-compare)
from mrnet.train.config import CLASS_WEIGHTS, EPOCH_MODES, NORMALIZE_MODES, OPTIMIZERS, SCHEDULES, SELECT_METRICS
from mrnet.train.display import RichReporter
from mrnet.train.loop import Interrupted
from mrnet.train.models import MODELS
from mrnet.train.models.mrnet import ROUTES, VARIANTS
from mrnet.train.plots import parse_formats
from mrnet.train.presets import PRESETS, another_models_recipe, default_preset, preset
from mrnet.train.ranges import MODEL_RANGES, RANGES, help_range
from mrnet.train.runs import RunFolder, default_run_dir

Preset = choices("Preset", PRESETS)
Model = choices("Model", MODELS)
Normalize = choices("Normalize", NORMALIZE_MODES)
Variant = choices("Variant", VARIANTS)
Route = choices("Route", ROUTES)
Optimizer = choices("Optimizer", OPTIMIZERS)
Schedule = choices("Schedule", SCHEDULES)
ClassWeights = choices("ClassWeights", CLASS_WEIGHTS)
EpochMode = choices("EpochMode", EPOCH_MODES)
SelectMetric = choices("SelectMetric", sorted({m for ms in SELECT_METRICS.values() for m in ms}))


class Folds(StrEnum):
    all = "all"


#: what --resume may change: where the store is, the machine, and --epochs (more: the run is extended)
RESUMABLE = {"store", "check_reads", "num_workers", "device", "workers", "gpus", "scheduler", "epochs"}
INPUT, MODEL, OPTIM, AUGMENT, EVAL, MACHINE = (
    "Input and output",
    "Model",
    "Optimisation",
    "Augmentation",
    "Evaluation and selection",
    "Machinery",
)
BY_PRESET = "preset"


# --- mrnet-train --------------------------------------------------------------------------------


class TrainCommand(Command):
    """mrnet-train: each numeric option's help ends with its range, as declared in train/ranges.py."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name in RANGES or param.name in MODEL_RANGES:
                param.help = (getattr(param, "help", None) or "") + help_range(param.name)


train_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


def _opt(help: str, panel: str, default_text: str | None = BY_PRESET, **kw):
    """An option of mrnet-train in its help panel, its default named (most come from the preset)."""
    return typer.Option(help=help, rich_help_panel=panel, show_default=default_text if default_text else True, **kw)


def _model_options(pairs: list[str] | None) -> dict | None:
    """``KEY=VALUE`` pairs as a dict, each value read as JSON when it parses (numbers, booleans, lists)."""
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--model-option {pair!r}: write KEY=VALUE, e.g. --model-option margin=2")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def rich_reporter() -> RichReporter:
    """Rank 0's reporter in a process of its own (launch.spawn): progress on this terminal."""
    return RichReporter(Console())


def _stages(texts: list[str] | None) -> tuple | None:
    """``EPOCH:OPTIMIZER:LR`` texts as the config's stages."""
    if not texts:
        return None
    out = []
    for text in texts:
        parts = text.split(":")
        try:
            epoch, name, lr = int(parts[0]), parts[1], float(parts[2])
        except (IndexError, ValueError):
            raise UserError(f"--stage {text!r}: write EPOCH:OPTIMIZER:LR, e.g. --stage 80:sgd:1e-3") from None
        out.append((epoch, name, lr))
    return tuple(out)


@train_app.command(cls=TrainCommand)
@report_user_errors
def train(
    store: Annotated[
        str | None,
        _opt("Feature store: a path or URL (s3://...). With --resume: where the run's store is now.", INPUT, None),
    ] = None,
    resume: Annotated[
        Path | None,
        _opt("Continue this run folder exactly where it stopped.", INPUT, None, exists=True, file_okay=False),
    ] = None,
    out: Annotated[Path | None, _opt("Run folder.", INPUT, "runs/STORE-YYYYmmdd-HHMMSS")] = None,
    fold: Annotated[
        int | None,
        _opt("Train fold K of a k-fold store (test = K, valid = K+1).", INPUT, "the official split, or fold 0"),
    ] = None,
    folds: Annotated[
        Folds | None, _opt("all: train every fold, report mean and standard deviation.", INPUT, "one split")
    ] = None,
    layer: Annotated[list[int] | None, _opt("Feed only these stored layers (repeatable).", INPUT, "all")] = None,
    preset_name: Annotated[
        Preset | None,
        typer.Option(
            "--preset",
            help="paper: MRNet as its authors train it; tiny: a first run on a CPU (minutes); small: a few hundred real tracks on a CPU; <model>-paper: that baseline's published recipe (docs/models.md). "
            r"\[default: the model's own recipe: paper for mrnet and linear, <model>-paper for a baseline]",
            rich_help_panel=MODEL,
        ),
    ] = None,
    model: Annotated[
        Model | None,
        _opt(
            "mrnet, a baseline of docs/models.md, or linear: the linear probe every result is read against.",
            MODEL,
            "the preset's: mrnet",
        ),
    ] = None,
    width: Annotated[
        int | None, _opt("MRNet's width C (channels of every block).", MODEL, "paper 512, tiny 32, small 48")
    ] = None,
    embed_dim: Annotated[int | None, _opt("MRNet's embedding size.", MODEL, "paper 128, tiny 32, small 64")] = None,
    variant: Annotated[
        Variant | None, _opt("MRNet's mid routes: paper (Eq. 4) or authors (their released code).", MODEL, "paper")
    ] = None,
    drop_route: Annotated[
        list[Route] | None, _opt("Leave an MRNet route out (repeatable): the paper's Table 3 ablation.", MODEL, "none")
    ] = None,
    dropout: Annotated[float | None, _opt("MRNet's dropout.", MODEL, "paper 0.5, tiny and small 0.1")] = None,
    model_option: Annotated[
        list[str] | None,
        _opt(
            "A model's own option as KEY=VALUE (repeatable), e.g. margin=2 for musicnext, connection=carry for msecnn.",
            MODEL,
            "none",
        ),
    ] = None,
    normalize: Annotated[
        Normalize | None,
        _opt(
            "Input normalisation: instance (per track over time, MRNet's), stored (each feature standardised with the training split's statistics from the store), global (one mean and std: MusicNeXt's) or none.",
            MODEL,
            "the model's recipe, else by feature kind: none for Mel, instance for WavLM",
        ),
    ] = None,
    epochs: Annotated[int | None, _opt("Epochs to train.", OPTIM)] = None,
    batch_size: Annotated[int | None, _opt("Crops per batch.", OPTIM)] = None,
    crop_seconds: Annotated[
        float | None, _opt("Training crop length; a model with a fixed input length uses its own.", OPTIM)
    ] = None,
    optimizer: Annotated[
        Optimizer | None, _opt("adamw, adam (weight decay as L2) or sgd (momentum 0.9, Nesterov).", OPTIM)
    ] = None,
    lr: Annotated[float | None, _opt("Initial learning rate.", OPTIM)] = None,
    schedule: Annotated[
        Schedule | None, _opt("cosine (lr to --lr-min over the run), constant, or stages (--stage).", OPTIM)
    ] = None,
    lr_min: Annotated[float | None, _opt("Learning rate the cosine ends at.", OPTIM)] = None,
    stage: Annotated[
        list[str] | None,
        _opt(
            "With --schedule stages: EPOCH:OPTIMIZER:LR (repeatable); from that epoch on a fresh optimizer, starting from the best checkpoint.",
            OPTIM,
        ),
    ] = None,
    weight_decay: Annotated[float | None, _opt("Weight decay.", OPTIM)] = None,
    amsgrad: Annotated[
        bool | None, flag("--amsgrad/--no-amsgrad", help=r"AdamW's amsgrad. \[default: on]", panel=OPTIM)
    ] = None,
    class_weights: Annotated[
        ClassWeights | None,
        _opt(
            "Genres: balanced weighs each class's loss by max count / its count in training (MRNet's paper); none: plain cross-entropy (the baselines' papers).",
            OPTIM,
        ),
    ] = None,
    epoch_mode: Annotated[
        EpochMode | None,
        _opt(
            "crops: an epoch is one random crop per training track; fragments: every non-overlapping crop of every training track (MusicNeXt's ten fragments per clip).",
            OPTIM,
        ),
    ] = None,
    pos_weight: Annotated[
        bool | None,
        flag(
            "--pos-weight/--no-pos-weight",
            help=r"Tags: weigh each tag's positives by its negatives per positive in training. \[default: off]",
            panel=OPTIM,
        ),
    ] = None,
    augment: Annotated[
        bool | None,
        flag(
            "--augment/--no-augment",
            help=r"Feature noise, time and feature masks, time flips, as set below. \[default: the preset's]",
            panel=AUGMENT,
        ),
    ] = None,
    noise_p: Annotated[float | None, _opt("Probability of Gaussian feature noise per crop.", AUGMENT)] = None,
    time_masks: Annotated[int | None, _opt("Time masks per crop, at most.", AUGMENT)] = None,
    time_mask_frac: Annotated[float | None, _opt("Longest time mask, as a fraction of the crop.", AUGMENT)] = None,
    feature_masks: Annotated[int | None, _opt("Feature masks per crop, at most.", AUGMENT)] = None,
    feature_mask_frac: Annotated[
        float | None, _opt("Widest feature mask, as a fraction of the features.", AUGMENT)
    ] = None,
    time_flip: Annotated[float | None, _opt("Probability of playing a crop backwards.", AUGMENT)] = None,
    select_metric: Annotated[
        SelectMetric | None,
        _opt(
            "Validation metric that picks the checkpoint; loss: the lowest validation loss; last: the last epoch.",
            EVAL,
            "accuracy for genres, roc_auc for tags",
        ),
    ] = None,
    patience: Annotated[
        int | None, _opt("Stop after this many evaluations without improvement (0: never).", EVAL)
    ] = None,
    min_delta: Annotated[float | None, _opt("What counts as an improvement for --patience.", EVAL)] = None,
    eval_unit: Annotated[
        str | None,
        _opt(
            "What of a track is scored: whole, center (one crop) or chunks:N (N crops averaged).",
            EVAL,
            "the model's; MRNet: whole",
        ),
    ] = None,
    eval_every: Annotated[int | None, _opt("Epochs between evaluations.", EVAL)] = None,
    eval_batch_size: Annotated[int | None, _opt("Tracks of equal length per evaluation batch.", EVAL)] = None,
    test_curve: Annotated[
        bool | None,
        flag(
            "--test-curve/--no-test-curve",
            help=r"Also evaluate test each time (curve and optimistic number; never for selection). \[default: the preset's]",
            panel=EVAL,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        _opt(
            "Train on N CPU processes (PyTorch DDP, gloo), --batch-size being the global batch; with --folds all, N folds at once.",
            MACHINE,
            "1",
        ),
    ] = None,
    gpus: Annotated[
        str | None,
        _opt(
            "GPUs as 0,1,... (all: every GPU here): one process per GPU (DDP, NCCL); with --folds all, one fold per GPU at once.",
            MACHINE,
            "one process, --device",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        _opt(
            "With --folds all: run the folds as tasks on this Dask cluster (tcp://host:8786), as mrnet-extract does.",
            MACHINE,
            "none",
        ),
    ] = None,
    sync_bn: Annotated[
        bool | None,
        flag(
            "--sync-bn/--no-sync-bn",
            help=r"Several processes: BatchNorm statistics over the global batch (SyncBatchNorm), so N processes train what one does. \[default: on]",
            panel=MACHINE,
        ),
    ] = None,
    check_reads: Annotated[
        bool | None,
        flag(
            "--check-reads/--no-check-reads",
            help=r"Check each track's data against its checksum in the store's manifest when a process first reads it, and stop naming a damaged track (costs a whole track's read per track and process; mrnet-store verify checks a store once). \[default: off]",
            panel=MACHINE,
        ),
    ] = None,
    num_workers: Annotated[
        int | None,
        _opt(
            "Read with a DataLoader of N worker processes (0: in the training loop) instead of threads of this process reading ahead.",
            MACHINE,
            "threads: 2 on CPU; on a GPU half the cores, 2 to 8",
        ),
    ] = None,
    device: Annotated[str | None, _opt("auto, cpu, cuda or cuda:N.", MACHINE, "auto")] = None,
    bf16: Annotated[
        bool | None, flag("--bf16/--no-bf16", help=r"bfloat16 autocast on GPU. \[default: on]", panel=MACHINE)
    ] = None,
    seed: Annotated[
        int | None, _opt("Seed of the model's initialisation, the crops and the augmentation.", MACHINE, "0")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help=FORMAT_HELP, rich_help_panel=INPUT, show_default="png")
    ] = None,
    seeds: Annotated[
        str | None,
        _opt(
            "Seeds as 0,1,2: train this configuration once per seed into one folder (seed-<s>/ each), report mean and spread; side by side with --workers/--gpus/--scheduler.",
            MACHINE,
            "one run, --seed",
        ),
    ] = None,
    show_config: Annotated[
        bool,
        flag(
            "--show-config",
            help="Print the run's config (the preset with your options, and what the model and the store decide: normalisation and selection metric stay null only when the store cannot be opened) as JSON and exit.",
            panel=MACHINE,
        ),
    ] = False,
) -> None:
    """Train MRNet, or a baseline, on a feature store and report honest test metrics (checkpoint chosen on validation).

    A default of (preset) comes from --preset; --show-config prints the config a preset and your options make.
    """
    from mrnet.train import launch, report
    from mrnet.train import seeds as seeds_report

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
        model_options={**own, **(_model_options(model_option) or {})} or None,
        epochs=epochs,
        batch_size=batch_size,
        crop_seconds=crop_seconds,
        optimizer=optimizer and optimizer.value,
        lr=lr,
        schedule=schedule and schedule.value,
        lr_min=lr_min,
        stages=_stages(stage),
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
    if resume is not None:
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
        cfg = preset(preset_name.value if preset_name else default_preset(options.get("model")), store, **options)
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg.store)
        cfg = cfg.with_(out=str(run_dir))
        if (
            show_config
        ):  # every value resolved: the store's feature and task decide normalisation, selection and evaluation
            from mrnet.train.setup import resolved

            typer.echo(json.dumps(resolved(cfg).to_json(), indent=2))
            return
        if another_models_recipe(cfg):
            reporter.note(another_models_recipe(cfg))
        action = lambda: launch.train(cfg, reporter=reporter, reporter_factory=rich_reporter)  # noqa: E731
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
    if path is None:  # a torchrun process other than rank 0: rank 0 shows the result
        return
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


# --- mrnet-predict ------------------------------------------------------------------------------

predict_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@predict_app.command(cls=Command)
@report_user_errors
def predict(
    run: Annotated[
        Path,
        typer.Argument(
            help="A finished run folder: one split, one fold-K folder, or a --folds all run (its folds' models averaged).",
            exists=True,
            file_okay=False,
        ),
    ],
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Audio files (WAV, FLAC, MP3, OGG...), folders of them, or CSV files listing them (a 'path' column).",
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="How many genres (or tags) to show per file.", min=1)] = 3,
    as_json: Annotated[
        bool, flag("--json", help="One JSON document on stdout, for machines.", panel="Options")
    ] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    store: Annotated[
        str | None,
        typer.Option(
            help="Predict the tracks of a feature store instead of audio files (no decoding): a store of the features the run was trained on."
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(help="With --store: the split to predict (train, valid or test; a --folds all run: each fold's)."),
    ] = "test",
    embeddings: Annotated[
        bool,
        flag(
            "--embeddings",
            help="With --store: add each track's pooled embedding (the model's penultimate vector).",
            panel="Options",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="With --store: the predictions table to write.", show_default="RUN/predictions-SPLIT.parquet"
        ),
    ] = None,
) -> None:
    """Top genres (or tags) of audio files, with probabilities, from a run's validation-selected model; with --store, a
    predictions table (predictions.parquet's schema, docs/training.md) of a split of stored features."""
    from mrnet.train.predict import Predictor, files_from, predict_files

    console, errors = Console(), Console(stderr=True)
    if store is not None:
        from mrnet.train.predict_store import write_split

        if files:
            raise UserError("--store predicts the tracks of a store: give either audio files or --store, not both")
        console.print(
            escape(write_split(run, store, split, embeddings=embeddings, out=out, device=device)), highlight=False
        )
        return
    if not files:
        raise UserError(
            "give audio files (or folders, or CSV lists of them) to predict, or --store STORE --split test to predict stored tracks"
        )
    predictor = Predictor.open(run, device=device)
    results = predict_files(predictor, files_from(files), top=top)
    failed = [r for r in results if r.error is not None]
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in failed:
            errors.print(f"[red]failed:[/] {escape(r.error)}", highlight=False)
        kind = "tag" if predictor.multilabel else "genre"
        ensemble = f", {len(predictor.models)} folds averaged" if len(predictor.models) > 1 else ""
        table = Table(title=f"mrnet-predict ({escape(str(run))}{ensemble})")
        for col in ("file", kind, "probability"):
            table.add_column(col, justify="right" if col == "probability" else "left")
        for r in results:
            for i, (label, p) in enumerate(r.top):
                mark = " *" if r.tagged is not None and label in r.tagged else ""
                table.add_row(
                    escape(r.path) if i == 0 else "", label + mark, f"{100 * p:.1f}%", end_section=i == len(r.top) - 1
                )
        if predictor.multilabel and predictor.threshold is not None:
            table.caption = f"* at or above the threshold chosen on validation ({predictor.threshold:.2f})"
        console.print(table)
        if failed:
            errors.print(f"[red]{len(failed)} of {len(results)} files failed[/] (named above).")
    if failed:
        raise typer.Exit(1)


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
