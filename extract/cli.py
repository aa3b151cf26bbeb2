"""``mrnet-extract``: a thin command line over ``mrnet.extract.pipeline.run``."""

from __future__ import annotations

import errno
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mrnet.core.cli import Command, choices, flag, parse_gpus, parse_ints
from mrnet.core.errors import UserError, report_user_errors
from mrnet.extract.config import RANGES, ExtractConfig, manifest_folder
from mrnet.extract.datasets import DATASET_NAMES
from mrnet.extract.engines import FEATURES, PRECISIONS
from mrnet.store.format import CODECS, DTYPES
from mrnet.store.location import storage_options_from_json

app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)

Dataset = choices("Dataset", DATASET_NAMES)
Features = choices("Features", FEATURES)
DType = choices("DType", DTYPES)
Codec = choices("Codec", CODECS)
Precision = choices("Precision", PRECISIONS)
INPUT, FEATURE, OUTPUT, MACHINE = "Input", "Features", "Output", "Machinery"


def _range(name: str) -> dict:
    """typer's min and max for an option: checked as it is parsed, shown in --help."""
    least, most = RANGES[name]
    return {"min": least, "max": most}


def _finite(value: float) -> float:
    """A float option's value, refused when NaN (which no range check catches)."""
    if math.isnan(value):
        raise typer.BadParameter("NaN is not a number of seconds")
    return value


class Channels(str, Enum):
    mono = "mono"
    stereo = "stereo"


@app.command(cls=Command)
@report_user_errors
def extract(
    dataset: Annotated[
        Dataset,
        typer.Argument(
            help="Which reader: a published dataset, 'folder' for your own audio, or 'demo'.", show_default=False
        ),
    ],
    # input
    root: Annotated[
        Path | None,
        typer.Option(
            help="The dataset as it ships (not needed for demo); hf: a save_to_disk or Parquet folder, or a hub name.",
            rich_help_panel=INPUT,
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="folder: CSV/Parquet of path and genre (or tags), optionally artist and split or fold.",
            rich_help_panel=INPUT,
        ),
    ] = None,
    labeling: Annotated[
        str | None,
        typer.Option(
            help=r"FMA: top (the root genres: 8 in fma_small, 16 in medium and large) or all (every genre, the paper's FMA-large task). \[default: top]",
            rich_help_panel=INPUT,
        ),
    ] = None,
    tags: Annotated[
        str | None,
        typer.Option(
            help=r"mtat: keep the N most frequent tags, or the tags a file names, one per line. \[default: 50]",
            rich_help_panel=INPUT,
        ),
    ] = None,
    label_column: Annotated[
        str | None,
        typer.Option(
            help="hf: the dataset column of each clip's genre (ClassLabel or string) or tags (a list).",
            rich_help_panel=INPUT,
        ),
    ] = None,
    keep_untagged: Annotated[
        bool,
        flag(
            "--keep-untagged",
            help="mtat: keep clips with none of the kept tags, as clips with no positive tag.",
            panel=INPUT,
        ),
    ] = False,
    split_files: Annotated[
        Path | None,
        typer.Option(help="Folder with train.txt, valid.txt, test.txt of relative paths.", rich_help_panel=INPUT),
    ] = None,
    fold_files: Annotated[
        list[Path] | None,
        typer.Option(
            help="Text files of relative paths, one per fold (repeat the option).",
            rich_help_panel=INPUT,
            show_default=False,
        ),
    ] = None,
    folds: Annotated[
        int,
        typer.Option(
            help="k for seeded stratified k-fold where the dataset has no official split.",
            rich_help_panel=INPUT,
            **_range("folds"),
        ),
    ] = 10,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the fold assignment (and of --limit's sample).", rich_help_panel=INPUT, **_range("seed")
        ),
    ] = 0,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Only N tracks, a sample with every label in it (a trial run).",
            rich_help_panel=INPUT,
            **_range("limit"),
        ),
    ] = None,
    # features
    features: Annotated[
        Features | None,
        typer.Option(
            help=r"Feature kind (docs/store.md). \[default: wavlm; mel for demo and melon]", rich_help_panel=FEATURE
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="wavlm, ssl: hub name or local directory of the encoder (docs/encoders.md).", rich_help_panel=FEATURE
        ),
    ] = "microsoft/wavlm-base",
    revision: Annotated[
        str | None,
        typer.Option(
            help=r"wavlm, ssl: hub revision (commit, tag or branch) of --model. \[default: the newest]",
            rich_help_panel=FEATURE,
        ),
    ] = None,
    trust_remote_code: Annotated[
        bool,
        flag(
            "--trust-remote-code",
            help="ssl: allow a model that brings its own Python code (MERT); the store records it.",
            panel=FEATURE,
        ),
    ] = False,
    layers: Annotated[
        str | None,
        typer.Option(
            help=r"wavlm, ssl: hidden states to store, e.g. 0-12 or 0,6,12. \[default: all]", rich_help_panel=FEATURE
        ),
    ] = None,
    channels: Annotated[
        Channels,
        typer.Option(
            help="mono (downmix) or stereo (each channel separately; mono duplicated).", rich_help_panel=FEATURE
        ),
    ] = Channels.mono,
    dtype: Annotated[DType, typer.Option(help="Stored precision.", rich_help_panel=FEATURE)] = DType["float16"],
    precision: Annotated[
        Precision,
        typer.Option(
            help="wavlm, ssl: model precision; auto is bf16 on a GPU, fp32 on a CPU.", rich_help_panel=FEATURE
        ),
    ] = Precision["auto"],
    normalize: Annotated[
        bool | None,
        typer.Option(
            "--normalize/--no-normalize",
            help=r"wavlm, ssl: zero mean, unit variance per window. \[default: as the model's preprocessor says]",
            rich_help_panel=FEATURE,
            metavar="",
        ),
    ] = None,
    window_seconds: Annotated[
        float,
        typer.Option(
            help="wavlm, ssl: tracks longer than this are cut into windows of this length.",
            rich_help_panel=FEATURE,
            **_range("window_seconds"),
            callback=_finite,
        ),
    ] = 40.0,
    # output
    out: Annotated[
        str | None,
        typer.Option(
            help=r"Store path or URL. \[default: store/DATASET.zarr; for folder, store/<root folder's name>.zarr]",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    manifests_dir: Annotated[
        Path,
        typer.Option(help="Where the store's manifests go, in a folder named after the store.", rich_help_panel=OUTPUT),
    ] = Path("manifests"),
    codec: Annotated[Codec, typer.Option(help="Chunk compression (docs/store.md).", rich_help_panel=OUTPUT)] = Codec[
        "none"
    ],
    chunk_frames: Annotated[
        int,
        typer.Option(help="Frames per inner chunk (docs/store.md).", rich_help_panel=OUTPUT, **_range("chunk_frames")),
    ] = 150,
    storage_options: Annotated[
        str | None,
        typer.Option(
            help=r"fsspec options for a URL --out, as JSON. \[default: $MRNET_STORAGE_OPTIONS, then the AWS_* variables]",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        flag(
            "--overwrite",
            help="Remove the store at --out first (only a store's own files; anything else there is refused).",
            panel=OUTPUT,
        ),
    ] = False,
    retry_failed: Annotated[
        bool, flag("--retry-failed", help="Try tracks that failed in an earlier run again.", panel=OUTPUT)
    ] = False,
    dry_run: Annotated[
        bool,
        flag(
            "--dry-run",
            help="Print the scan's notes, tracks, audio hours, store size and time; write nothing.",
            panel=OUTPUT,
        ),
    ] = False,
    # machinery
    gpus: Annotated[
        str | None, typer.Option(help="GPU ids (0,1) or all, one Dask worker each.", rich_help_panel=MACHINE)
    ] = None,
    workers: Annotated[
        int,
        typer.Option(help="CPU Dask workers (0: run in this process).", rich_help_panel=MACHINE, **_range("workers")),
    ] = 0,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Run on an existing Dask cluster, e.g. tcp://host:8786 (the dataset and --out must be reachable from its workers).",
            rich_help_panel=MACHINE,
        ),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            help="Torch threads per worker (0: automatic). Equal counts give bitwise-equal features across runs.",
            rich_help_panel=MACHINE,
            **_range("threads"),
        ),
    ] = 0,
    io_threads: Annotated[
        int,
        typer.Option(
            help="Decoding and writing threads per worker (0: its share of the machine's cores).",
            rich_help_panel=MACHINE,
            **_range("io_threads"),
        ),
    ] = 0,
    batch_size: Annotated[
        int,
        typer.Option(
            help="wavlm, ssl: equal-length windows per forward pass.", rich_help_panel=MACHINE, **_range("batch_size")
        ),
    ] = 8,
    unit_size: Annotated[
        int,
        typer.Option(
            help="Tracks per work unit (the grain of the queue and of resume).",
            rich_help_panel=MACHINE,
            **_range("unit_size"),
        ),
    ] = 16,
) -> None:
    """Extract frame-level features of a dataset into a Zarr feature store."""
    console = Console(stderr=False)
    if dataset.value == "demo" and features is None:
        console.print(
            "[yellow]demo:[/] using --features mel (WavLM weights need a download; pass --features wavlm to use them)."
        )
    cfg = ExtractConfig(
        dataset=dataset.value,
        root=root,
        out=out,
        manifests_dir=manifests_dir,
        features=features and features.value,
        model=model,
        revision=revision,
        trust_remote_code=trust_remote_code,
        layers=parse_ints(layers, "--layers", all_is_none=True),
        dtype=dtype.value,
        channels=1 if channels == Channels.mono else 2,
        batch_size=batch_size,
        window_seconds=window_seconds,
        precision=precision.value,
        normalize=normalize,
        codec=codec.value,
        chunk_frames=chunk_frames,
        unit_size=unit_size,
        gpus=parse_gpus(gpus),
        workers=workers,
        threads=threads,
        io_threads=io_threads,
        scheduler=scheduler,
        labels=labels,
        labeling=labeling,
        folds=folds,
        seed=seed,
        split_files=split_files,
        fold_files=tuple(fold_files or ()),
        tags=tags,
        keep_untagged=keep_untagged,
        label_column=label_column,
        limit=limit,
        overwrite=overwrite,
        retry_failed=retry_failed,
        storage_options=storage_options_from_json(storage_options),
    )
    if dry_run:
        _dry_run(cfg, console)
        return
    from mrnet.extract.pipeline import run
    from mrnet.extract.progress import RunProgress, failed_table, summary_table, warned_table

    with RunProgress(console, f"extract {cfg.dataset}") as bar:
        try:
            summary = run(cfg, on_scan=lambda found: _print_notes(console, found), on_start=bar.start, on_unit=bar.unit)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise UserError(
                f"no space left writing {err.filename or cfg.store}: this run wrote {bar.tracks} tracks "
                f"({bar.bytes / 1e9:.2f} GB), which are kept with everything before them. Free some space, "
                "then run the same command again: it resumes where it stopped."
            ) from err
    console.print(summary_table(summary))
    for table in (failed_table(summary), warned_table(summary)):
        if table is not None:
            console.print(table)
    console.print(f"Store: [bold]{summary.store}[/]   Manifests: {manifest_folder(cfg)}/")
    if summary.statistics:
        console.print(f"[yellow]note:[/] {summary.statistics}")
    if summary.nothing_extracted:
        console.print(f"[yellow]nothing was extracted:[/] {escape(summary.nothing_extracted)}", highlight=False)


def _print_notes(console: Console, found) -> None:
    noun = "tags" if found.task == "multi-label" else "genres"
    console.print(
        f"{found.name}: {found.tracks.height} tracks, {found.genres.height} {noun} ({found.labeling} labels) under {found.root}",
        highlight=False,
    )
    for note in found.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def _dry_run(cfg: ExtractConfig, console: Console) -> None:
    from mrnet.extract.dryrun import estimate

    with console.status("scanning and timing a sample..."):
        est = estimate(cfg)
    for note in est.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    workers = max(len(cfg.gpus), cfg.workers, 1)
    table = Table(title=f"mrnet-extract {cfg.dataset} --dry-run (nothing written)", show_header=False)
    table.add_row(
        "tracks", f"{est.tracks} ({est.unreadable} unreadable or missing, {est.already_done} already in {cfg.store})"
    )
    table.add_row("audio", f"{est.audio_hours:.2f} h")
    table.add_row(
        "store size",
        f"{est.store_bytes / 1e9:.2f} GB uncompressed ({est.bytes_per_audio_second / 1e6:.3f} MB per audio second)",
    )
    if est.seconds is None:
        table.add_row("time", est.calibration)
    else:
        table.add_row("time", f"~{est.seconds / workers / 3600:.2f} h with {workers} worker(s); {est.calibration}")
    console.print(table)


def main() -> None:
    """Entry point of ``mrnet-extract``."""
    try:
        app()
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "[yellow]interrupted:[/] finished units are kept; run the same command again to resume."
        )
        sys.exit(130)
