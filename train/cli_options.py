"""The options of ``mrnet-train``, declared once: their help panels, choices and help texts.

Each option is an ``Annotated`` type named after it (``Store`` for ``--store``); ``cli_train.train``
lists them in the order ``--help`` shows them. Choices come from the tuples the library declares them in.
A default of "preset" comes from ``--preset``; each numeric option's help ends with its range
(``TrainCommand``, from train/ranges.py).
"""

from __future__ import annotations

import json
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import typer

from mrnet.core.cli import Command, choices, flag
from mrnet.core.errors import UserError
from mrnet.train.config import CLASS_WEIGHTS, EPOCH_MODES, NORMALIZE_MODES, OPTIMIZERS, SCHEDULES, SELECT_METRICS
from mrnet.train.formats import FORMAT_HELP
from mrnet.train.models import MODELS
from mrnet.train.models.mrnet import ROUTES, VARIANTS
from mrnet.train.presets import PRESETS
from mrnet.train.ranges import MODEL_RANGES, RANGES, help_range

if TYPE_CHECKING:  # made at run time from the library's tuples; a type checker knows them as str Enums
    PresetChoice: TypeAlias = Enum
    ModelChoice: TypeAlias = Enum
    NormalizeChoice: TypeAlias = Enum
    VariantChoice: TypeAlias = Enum
    RouteChoice: TypeAlias = Enum
    OptimizerChoice: TypeAlias = Enum
    ScheduleChoice: TypeAlias = Enum
    ClassWeightsChoice: TypeAlias = Enum
    EpochModeChoice: TypeAlias = Enum
    SelectMetricChoice: TypeAlias = Enum
else:
    PresetChoice = choices("Preset", PRESETS)
    ModelChoice = choices("Model", MODELS)
    NormalizeChoice = choices("Normalize", NORMALIZE_MODES)
    VariantChoice = choices("Variant", VARIANTS)
    RouteChoice = choices("Route", ROUTES)
    OptimizerChoice = choices("Optimizer", OPTIMIZERS)
    ScheduleChoice = choices("Schedule", SCHEDULES)
    ClassWeightsChoice = choices("ClassWeights", CLASS_WEIGHTS)
    EpochModeChoice = choices("EpochMode", EPOCH_MODES)
    SelectMetricChoice = choices("SelectMetric", sorted({m for ms in SELECT_METRICS.values() for m in ms}))


class FoldsChoice(StrEnum):
    all = "all"


INPUT, MODEL, OPTIM, AUGMENT, EVAL, MACHINE = (
    "Input and output",
    "Model",
    "Optimisation",
    "Augmentation",
    "Evaluation and selection",
    "Machinery",
)
BY_PRESET = "preset"


class TrainCommand(Command):
    """mrnet-train: each numeric option's help ends with its range, as declared in train/ranges.py."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name in RANGES or param.name in MODEL_RANGES:
                param.help = (getattr(param, "help", None) or "") + help_range(param.name)  # type: ignore[attr-defined]


def _opt(help: str, panel: str, default_text: str | None = BY_PRESET, **kw: Any) -> Any:
    """An option of mrnet-train in its help panel, its default named (most come from the preset)."""
    return typer.Option(help=help, rich_help_panel=panel, show_default=default_text if default_text else True, **kw)


# --- what the option texts mean -------------------------------------------------------------------


def model_options(pairs: list[str] | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs as a dict, each value read as JSON when it parses (numbers, booleans, lists)."""
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--model-option {pair!r}: write KEY=VALUE, e.g. --model-option margin=2")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def stages(texts: list[str] | None) -> tuple[tuple[int, str, float], ...] | None:
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


# --- the options, in the order --help shows them --------------------------------------------------

Store = Annotated[
    str | None,
    _opt("Feature store: a path or URL (s3://...). With --resume: where the run's store is now.", INPUT, None),
]
Resume = Annotated[
    Path | None,
    _opt("Continue this run folder exactly where it stopped.", INPUT, None, exists=True, file_okay=False),
]
Out = Annotated[Path | None, _opt("Run folder.", INPUT, "runs/STORE-YYYYmmdd-HHMMSS")]
Fold = Annotated[
    int | None,
    _opt("Train fold K of a k-fold store (test = K, valid = K+1).", INPUT, "the official split, or fold 0"),
]
Folds = Annotated[
    FoldsChoice | None, _opt("all: train every fold, report mean and standard deviation.", INPUT, "one split")
]
Layer = Annotated[list[int] | None, _opt("Feed only these stored layers (repeatable).", INPUT, "all")]
Preset = Annotated[
    PresetChoice | None,
    typer.Option(
        "--preset",
        help="paper: MRNet as its authors train it; tiny: a first run on a CPU (minutes); small: a few hundred real tracks on a CPU; <model>-paper: that baseline's published recipe (docs/models.md). "
        r"\[default: the model's own recipe: paper for mrnet and linear, <model>-paper for a baseline]",
        rich_help_panel=MODEL,
    ),
]
Model = Annotated[
    ModelChoice | None,
    _opt(
        "mrnet, a baseline of docs/models.md, or linear: the linear probe every result is read against.",
        MODEL,
        "the preset's: mrnet",
    ),
]
Width = Annotated[int | None, _opt("MRNet's width C (channels of every block).", MODEL, "paper 512, tiny 32, small 48")]
EmbedDim = Annotated[int | None, _opt("MRNet's embedding size.", MODEL, "paper 128, tiny 32, small 64")]
Variant = Annotated[
    VariantChoice | None, _opt("MRNet's mid routes: paper (Eq. 4) or authors (their released code).", MODEL, "paper")
]
DropRoute = Annotated[
    list[RouteChoice] | None,
    _opt("Leave an MRNet route out (repeatable): the paper's Table 3 ablation.", MODEL, "none"),
]
Dropout = Annotated[float | None, _opt("MRNet's dropout.", MODEL, "paper 0.5, tiny and small 0.1")]
ModelOption = Annotated[
    list[str] | None,
    _opt(
        "A model's own option as KEY=VALUE (repeatable), e.g. margin=2 for musicnext, connection=carry for msecnn.",
        MODEL,
        "none",
    ),
]
Normalize = Annotated[
    NormalizeChoice | None,
    _opt(
        "Input normalisation: instance (per track over time, MRNet's), stored (each feature standardised with the training split's statistics from the store), global (one mean and std: MusicNeXt's) or none.",
        MODEL,
        "the model's recipe, else by feature kind: none for Mel, instance for WavLM",
    ),
]
Epochs = Annotated[int | None, _opt("Epochs to train.", OPTIM)]
BatchSize = Annotated[int | None, _opt("Crops per batch.", OPTIM)]
CropSeconds = Annotated[
    float | None, _opt("Training crop length; a model with a fixed input length uses its own.", OPTIM)
]
Optimizer = Annotated[
    OptimizerChoice | None, _opt("adamw, adam (weight decay as L2) or sgd (momentum 0.9, Nesterov).", OPTIM)
]
Lr = Annotated[float | None, _opt("Initial learning rate.", OPTIM)]
Schedule = Annotated[
    ScheduleChoice | None, _opt("cosine (lr to --lr-min over the run), constant, or stages (--stage).", OPTIM)
]
LrMin = Annotated[float | None, _opt("Learning rate the cosine ends at.", OPTIM)]
Stage = Annotated[
    list[str] | None,
    _opt(
        "With --schedule stages: EPOCH:OPTIMIZER:LR (repeatable); from that epoch on a fresh optimizer, starting from the best checkpoint.",
        OPTIM,
    ),
]
WeightDecay = Annotated[float | None, _opt("Weight decay.", OPTIM)]
Amsgrad = Annotated[bool | None, flag("--amsgrad/--no-amsgrad", help=r"AdamW's amsgrad. \[default: on]", panel=OPTIM)]
ClassWeights = Annotated[
    ClassWeightsChoice | None,
    _opt(
        "Genres: balanced weighs each class's loss by max count / its count in training (MRNet's paper); none: plain cross-entropy (the baselines' papers).",
        OPTIM,
    ),
]
EpochMode = Annotated[
    EpochModeChoice | None,
    _opt(
        "crops: an epoch is one random crop per training track; fragments: every non-overlapping crop of every training track (MusicNeXt's ten fragments per clip).",
        OPTIM,
    ),
]
PosWeight = Annotated[
    bool | None,
    flag(
        "--pos-weight/--no-pos-weight",
        help=r"Tags: weigh each tag's positives by its negatives per positive in training. \[default: off]",
        panel=OPTIM,
    ),
]
Augment = Annotated[
    bool | None,
    flag(
        "--augment/--no-augment",
        help=r"Feature noise, time and feature masks, time flips, as set below. \[default: the preset's]",
        panel=AUGMENT,
    ),
]
NoiseP = Annotated[float | None, _opt("Probability of Gaussian feature noise per crop.", AUGMENT)]
TimeMasks = Annotated[int | None, _opt("Time masks per crop, at most.", AUGMENT)]
TimeMaskFrac = Annotated[float | None, _opt("Longest time mask, as a fraction of the crop.", AUGMENT)]
FeatureMasks = Annotated[int | None, _opt("Feature masks per crop, at most.", AUGMENT)]
FeatureMaskFrac = Annotated[float | None, _opt("Widest feature mask, as a fraction of the features.", AUGMENT)]
TimeFlip = Annotated[float | None, _opt("Probability of playing a crop backwards.", AUGMENT)]
SelectMetric = Annotated[
    SelectMetricChoice | None,
    _opt(
        "Validation metric that picks the checkpoint; loss: the lowest validation loss; last: the last epoch.",
        EVAL,
        "accuracy for genres, roc_auc for tags",
    ),
]
Patience = Annotated[int | None, _opt("Stop after this many evaluations without improvement (0: never).", EVAL)]
MinDelta = Annotated[float | None, _opt("What counts as an improvement for --patience.", EVAL)]
EvalUnit = Annotated[
    str | None,
    _opt(
        "What of a track is scored: whole, center (one crop) or chunks:N (N crops averaged).",
        EVAL,
        "the model's; MRNet: whole",
    ),
]
EvalEvery = Annotated[int | None, _opt("Epochs between evaluations.", EVAL)]
EvalBatchSize = Annotated[int | None, _opt("Tracks of equal length per evaluation batch.", EVAL)]
TestCurve = Annotated[
    bool | None,
    flag(
        "--test-curve/--no-test-curve",
        help=r"Also evaluate test each time (curve and optimistic number; never for selection). \[default: the preset's]",
        panel=EVAL,
    ),
]
Workers = Annotated[
    int | None,
    _opt(
        "Train on N CPU processes (PyTorch DDP, gloo), --batch-size being the global batch; with --folds all, N folds at once.",
        MACHINE,
        "1",
    ),
]
Gpus = Annotated[
    str | None,
    _opt(
        "GPUs as 0,1,... (all: every GPU here): one process per GPU (DDP, NCCL); with --folds all, one fold per GPU at once.",
        MACHINE,
        "one process, --device",
    ),
]
Scheduler = Annotated[
    str | None,
    _opt(
        "With --folds all: run the folds as tasks on this Dask cluster (tcp://host:8786), as mrnet-extract does.",
        MACHINE,
        "none",
    ),
]
SyncBn = Annotated[
    bool | None,
    flag(
        "--sync-bn/--no-sync-bn",
        help=r"Several processes: BatchNorm statistics over the global batch (SyncBatchNorm), so N processes train what one does. \[default: on]",
        panel=MACHINE,
    ),
]
CheckReads = Annotated[
    bool | None,
    flag(
        "--check-reads/--no-check-reads",
        help=r"Check each track's data against its checksum in the store's manifest when a process first reads it, and stop naming a damaged track (costs a whole track's read per track and process; mrnet-store verify checks a store once). \[default: off]",
        panel=MACHINE,
    ),
]
NumWorkers = Annotated[
    int | None,
    _opt(
        "Read with a DataLoader of N worker processes (0: in the training loop) instead of threads of this process reading ahead.",
        MACHINE,
        "threads: 2 on CPU; on a GPU half the cores, 2 to 8",
    ),
]
Device = Annotated[str | None, _opt("auto, cpu, cuda or cuda:N.", MACHINE, "auto")]
Bf16 = Annotated[bool | None, flag("--bf16/--no-bf16", help=r"bfloat16 autocast on GPU. \[default: on]", panel=MACHINE)]
Seed = Annotated[int | None, _opt("Seed of the model's initialisation, the crops and the augmentation.", MACHINE, "0")]
Format = Annotated[str | None, typer.Option("--format", help=FORMAT_HELP, rich_help_panel=INPUT, show_default="png")]
Seeds = Annotated[
    str | None,
    _opt(
        "Seeds as 0,1,2: train this configuration once per seed into one folder (seed-<s>/ each), report mean and spread; side by side with --workers/--gpus/--scheduler.",
        MACHINE,
        "one run, --seed",
    ),
]
ShowConfig = Annotated[
    bool,
    flag(
        "--show-config",
        help="Print the run's config (the preset with your options, and what the model and the store decide: normalisation and selection metric stay null only when the store cannot be opened) as JSON and exit.",
        panel=MACHINE,
    ),
]
