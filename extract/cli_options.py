"""The options of ``mrnet-extract``, declared once: their help panels, choices, ranges and help texts.

Each option is an ``Annotated`` type named after it (``Root`` for ``--root``); ``cli.extract`` lists them
in the order ``--help`` shows them. Choices come from the tuples the library declares them in, and each
numeric option's range from ``config.RANGES`` (checked as it is parsed, shown in ``--help``).
"""

from __future__ import annotations

import math
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mrnet.core.cli import choices, flag
from mrnet.extract.config import RANGES
from mrnet.extract.datasets import DATASET_NAMES
from mrnet.extract.engines import FEATURES, PRECISIONS
from mrnet.store.format import CODECS, DTYPES

if TYPE_CHECKING:  # made at run time from the library's tuples; to a type checker, Enums of members it cannot see

    class DatasetChoice(Enum): ...

    class FeaturesChoice(Enum): ...

    class DTypeChoice(Enum): ...

    class CodecChoice(Enum): ...

    class PrecisionChoice(Enum): ...

else:
    DatasetChoice = choices("Dataset", DATASET_NAMES)
    FeaturesChoice = choices("Features", FEATURES)
    DTypeChoice = choices("DType", DTYPES)
    CodecChoice = choices("Codec", CODECS)
    PrecisionChoice = choices("Precision", PRECISIONS)


class ChannelsChoice(StrEnum):
    mono = "mono"
    stereo = "stereo"


INPUT, FEATURE, OUTPUT, MACHINE = "Input", "Features", "Output", "Machinery"


def _range(name: str) -> dict[str, Any]:
    """typer's min and max for an option: checked as it is parsed, shown in --help."""
    least, most = RANGES[name]
    return {"min": least, "max": most}


def _finite(value: float) -> float:
    """A float option's value, refused when NaN (which no range check catches)."""
    if math.isnan(value):
        raise typer.BadParameter("NaN is not a number of seconds")
    return value


# --- input -----------------------------------------------------------------------------------------

Dataset = Annotated[
    DatasetChoice,
    typer.Argument(
        help="Which reader: a published dataset, 'folder' for your own audio, or 'demo'.", show_default=False
    ),
]
Root = Annotated[
    Path | None,
    typer.Option(
        help="The dataset as it ships (not needed for demo); hf: a save_to_disk or Parquet folder, or a hub name.",
        rich_help_panel=INPUT,
    ),
]
Labels = Annotated[
    Path | None,
    typer.Option(
        help="folder: CSV/Parquet of path and genre (or tags), optionally artist and split or fold.",
        rich_help_panel=INPUT,
    ),
]
Labeling = Annotated[
    str | None,
    typer.Option(
        help=r"FMA: top (the root genres: 8 in fma_small, 16 in medium and large) or all (every genre, the paper's FMA-large task). \[default: top]",
        rich_help_panel=INPUT,
    ),
]
Tags = Annotated[
    str | None,
    typer.Option(
        help=r"mtat: keep the N most frequent tags, or the tags a file names, one per line. \[default: 50]",
        rich_help_panel=INPUT,
    ),
]
LabelColumn = Annotated[
    str | None,
    typer.Option(
        help="hf: the dataset column of each clip's genre (ClassLabel or string) or tags (a list).",
        rich_help_panel=INPUT,
    ),
]
KeepUntagged = Annotated[
    bool,
    flag(
        "--keep-untagged",
        help="mtat: keep clips with none of the kept tags, as clips with no positive tag.",
        panel=INPUT,
    ),
]
SplitFiles = Annotated[
    Path | None,
    typer.Option(help="Folder with train.txt, valid.txt, test.txt of relative paths.", rich_help_panel=INPUT),
]
FoldFiles = Annotated[
    list[Path] | None,
    typer.Option(
        help="Text files of relative paths, one per fold (repeat the option).",
        rich_help_panel=INPUT,
        show_default=False,
    ),
]
Folds = Annotated[
    int,
    typer.Option(
        help="k for seeded stratified k-fold where the dataset has no official split.",
        rich_help_panel=INPUT,
        **_range("folds"),
    ),
]
Seed = Annotated[
    int,
    typer.Option(
        help="Seed of the fold assignment (and of --limit's sample).", rich_help_panel=INPUT, **_range("seed")
    ),
]
Limit = Annotated[
    int | None,
    typer.Option(
        help="Only N tracks, a sample with every label in it (a trial run).",
        rich_help_panel=INPUT,
        **_range("limit"),
    ),
]

# --- features --------------------------------------------------------------------------------------

Features = Annotated[
    FeaturesChoice | None,
    typer.Option(
        help=r"Feature kind (docs/store.md). \[default: wavlm; mel for demo and melon]", rich_help_panel=FEATURE
    ),
]
Model = Annotated[
    str,
    typer.Option(
        help="wavlm, ssl: hub name or local directory of the encoder (docs/encoders.md).", rich_help_panel=FEATURE
    ),
]
Revision = Annotated[
    str | None,
    typer.Option(
        help=r"wavlm, ssl: hub revision (commit, tag or branch) of --model. \[default: the newest]",
        rich_help_panel=FEATURE,
    ),
]
TrustRemoteCode = Annotated[
    bool,
    flag(
        "--trust-remote-code",
        help="ssl: allow a model that brings its own Python code (MERT); the store records it.",
        panel=FEATURE,
    ),
]
Layers = Annotated[
    str | None,
    typer.Option(
        help=r"wavlm, ssl: hidden states to store, e.g. 0-12 or 0,6,12. \[default: all]", rich_help_panel=FEATURE
    ),
]
Channels = Annotated[
    ChannelsChoice,
    typer.Option(help="mono (downmix) or stereo (each channel separately; mono duplicated).", rich_help_panel=FEATURE),
]
DType = Annotated[DTypeChoice, typer.Option(help="Stored precision.", rich_help_panel=FEATURE)]
Precision = Annotated[
    PrecisionChoice,
    typer.Option(help="wavlm, ssl: model precision; auto is bf16 on a GPU, fp32 on a CPU.", rich_help_panel=FEATURE),
]
Normalize = Annotated[
    bool | None,
    typer.Option(
        "--normalize/--no-normalize",
        help=r"wavlm, ssl: zero mean, unit variance per window. \[default: as the model's preprocessor says]",
        rich_help_panel=FEATURE,
        metavar="",
    ),
]
WindowSeconds = Annotated[
    float,
    typer.Option(
        help="wavlm, ssl: tracks longer than this are cut into windows of this length.",
        rich_help_panel=FEATURE,
        **_range("window_seconds"),
        callback=_finite,
    ),
]

# --- output ----------------------------------------------------------------------------------------

Out = Annotated[
    str | None,
    typer.Option(
        help=r"Store path or URL. \[default: store/DATASET.zarr; for folder, store/<root folder's name>.zarr]",
        rich_help_panel=OUTPUT,
    ),
]
ManifestsDir = Annotated[
    Path,
    typer.Option(help="Where the store's manifests go, in a folder named after the store.", rich_help_panel=OUTPUT),
]
Codec = Annotated[CodecChoice, typer.Option(help="Chunk compression (docs/store.md).", rich_help_panel=OUTPUT)]
ChunkFrames = Annotated[
    int,
    typer.Option(help="Frames per inner chunk (docs/store.md).", rich_help_panel=OUTPUT, **_range("chunk_frames")),
]
StorageOptions = Annotated[
    str | None,
    typer.Option(
        help=r"fsspec options for a URL --out, as JSON. \[default: $MRNET_STORAGE_OPTIONS, then the AWS_* variables]",
        rich_help_panel=OUTPUT,
    ),
]
Overwrite = Annotated[
    bool,
    flag(
        "--overwrite",
        help="Remove the store at --out first (only a store's own files; anything else there is refused).",
        panel=OUTPUT,
    ),
]
RetryFailed = Annotated[
    bool, flag("--retry-failed", help="Try tracks that failed in an earlier run again.", panel=OUTPUT)
]
DryRun = Annotated[
    bool,
    flag(
        "--dry-run",
        help="Print the scan's notes, tracks, audio hours, store size and time; write nothing.",
        panel=OUTPUT,
    ),
]

# --- machinery -------------------------------------------------------------------------------------

Gpus = Annotated[str | None, typer.Option(help="GPU ids, one Dask worker each, e.g. 0,1.", rich_help_panel=MACHINE)]
Workers = Annotated[
    int,
    typer.Option(help="CPU Dask workers (0: run in this process).", rich_help_panel=MACHINE, **_range("workers")),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        help="Run on an existing Dask cluster, e.g. tcp://host:8786 (the dataset and --out must be reachable from its workers).",
        rich_help_panel=MACHINE,
    ),
]
Threads = Annotated[
    int,
    typer.Option(
        help="Torch threads per worker (0: automatic). Equal counts give bitwise-equal features across runs.",
        rich_help_panel=MACHINE,
        **_range("threads"),
    ),
]
IoThreads = Annotated[
    int,
    typer.Option(
        help="Decoding and writing threads per worker (0: its share of the machine's cores).",
        rich_help_panel=MACHINE,
        **_range("io_threads"),
    ),
]
BatchSize = Annotated[
    int,
    typer.Option(
        help="wavlm, ssl: equal-length windows per forward pass.", rich_help_panel=MACHINE, **_range("batch_size")
    ),
]
UnitSize = Annotated[
    int,
    typer.Option(
        help="Tracks per work unit (the grain of the queue and of resume).",
        rich_help_panel=MACHINE,
        **_range("unit_size"),
    ),
]
