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


def _opt(help: str, panel: str, **kw: Any) -> Any:
    """An option of mrnet-extract with its help, in its --help panel."""
    return typer.Option(help=help, rich_help_panel=panel, **kw)


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
    _opt("The dataset as it ships (not needed for demo); hf: a save_to_disk or Parquet folder, or a hub name.", INPUT),
]
Labels = Annotated[
    Path | None, _opt("folder: CSV/Parquet of path and genre (or tags), optionally artist and split or fold.", INPUT)
]
Labeling = Annotated[
    str | None,
    _opt(
        r"FMA: top (the root genres: 8 in fma_small, 16 in medium and large) or all (every genre, the paper's FMA-large task). \[default: top]",
        INPUT,
    ),
]
Tags = Annotated[
    str | None,
    _opt(r"mtat: keep the N most frequent tags, or the tags a file names, one per line. \[default: 50]", INPUT),
]
LabelColumn = Annotated[
    str | None, _opt("hf: the dataset column of each clip's genre (ClassLabel or string) or tags (a list).", INPUT)
]
KeepUntagged = Annotated[
    bool,
    flag(
        "--keep-untagged",
        help="mtat: keep clips with none of the kept tags, as clips with no positive tag.",
        panel=INPUT,
    ),
]
SplitFiles = Annotated[Path | None, _opt("Folder with train.txt, valid.txt, test.txt of relative paths.", INPUT)]
FoldFiles = Annotated[
    list[Path] | None,
    _opt("Text files of relative paths, one per fold (repeat the option).", INPUT, show_default=False),
]
Folds = Annotated[
    int, _opt("k for seeded stratified k-fold where the dataset has no official split.", INPUT, **_range("folds"))
]
Seed = Annotated[int, _opt("Seed of the fold assignment (and of --limit's sample).", INPUT, **_range("seed"))]
Limit = Annotated[
    int | None, _opt("Only N tracks, a sample with every label in it (a trial run).", INPUT, **_range("limit"))
]

# --- features --------------------------------------------------------------------------------------

Features = Annotated[
    FeaturesChoice | None, _opt(r"Feature kind (docs/store.md). \[default: wavlm; mel for demo and melon]", FEATURE)
]
Model = Annotated[str, _opt("wavlm, ssl: hub name or local directory of the encoder (docs/encoders.md).", FEATURE)]
Revision = Annotated[
    str | None, _opt(r"wavlm, ssl: hub revision (commit, tag or branch) of --model. \[default: the newest]", FEATURE)
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
    str | None, _opt(r"wavlm, ssl: hidden states to store, e.g. 0-12 or 0,6,12. \[default: all]", FEATURE)
]
Channels = Annotated[
    ChannelsChoice, _opt("mono (downmix) or stereo (each channel separately; mono duplicated).", FEATURE)
]
DType = Annotated[DTypeChoice, _opt("Stored precision.", FEATURE)]
Precision = Annotated[
    PrecisionChoice, _opt("wavlm, ssl: model precision; auto is bf16 on a GPU, fp32 on a CPU.", FEATURE)
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
    _opt(
        "wavlm, ssl: tracks longer than this are cut into windows of this length.",
        FEATURE,
        **_range("window_seconds"),
        callback=_finite,
    ),
]

# --- output ----------------------------------------------------------------------------------------

Out = Annotated[
    str | None,
    _opt(r"Store path or URL. \[default: store/DATASET.zarr; for folder, store/<root folder's name>.zarr]", OUTPUT),
]
ManifestsDir = Annotated[Path, _opt("Where the store's manifests go, in a folder named after the store.", OUTPUT)]
Codec = Annotated[CodecChoice, _opt("Chunk compression (docs/store.md).", OUTPUT)]
ChunkFrames = Annotated[int, _opt("Frames per inner chunk (docs/store.md).", OUTPUT, **_range("chunk_frames"))]
StorageOptions = Annotated[
    str | None,
    _opt(
        r"fsspec options for a URL --out, as JSON. \[default: $MRNET_STORAGE_OPTIONS, then the AWS_* variables]", OUTPUT
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

Gpus = Annotated[str | None, _opt("GPU ids (0,1) or all, one Dask worker each.", MACHINE)]
Workers = Annotated[int, _opt("CPU Dask workers (0: run in this process).", MACHINE, **_range("workers"))]
Scheduler = Annotated[
    str | None,
    _opt(
        "Run on an existing Dask cluster, e.g. tcp://host:8786 (the dataset and --out must be reachable from its workers).",
        MACHINE,
    ),
]
Threads = Annotated[
    int,
    _opt(
        "Torch threads per worker (0: automatic). Equal counts give bitwise-equal features across runs.",
        MACHINE,
        **_range("threads"),
    ),
]
IoThreads = Annotated[
    int,
    _opt(
        "Decoding and writing threads per worker (0: its share of the machine's cores).",
        MACHINE,
        **_range("io_threads"),
    ),
]
BatchSize = Annotated[int, _opt("wavlm, ssl: equal-length windows per forward pass.", MACHINE, **_range("batch_size"))]
UnitSize = Annotated[
    int, _opt("Tracks per work unit (the grain of the queue and of resume).", MACHINE, **_range("unit_size"))
]
