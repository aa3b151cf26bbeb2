"""``mrnet-extract``: a thin command line over ``mrnet.extract.pipeline.run``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mrnet.core.errors import UserError, report_user_errors
from mrnet.extract.config import ExtractConfig
from mrnet.extract.datasets import DATASET_NAMES
from mrnet.extract.engines import FEATURES, PRECISIONS
from mrnet.store.format import CODECS, DTYPES
from mrnet.store.location import storage_options_from_json

app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


def choices(name: str, values) -> type[Enum]:
    """A ``str`` Enum of option values, from the tuple the library declares them in (one source of truth)."""
    return Enum(name, {v: v for v in values}, type=str)


Dataset = choices("Dataset", DATASET_NAMES)
Features = choices("Features", FEATURES)
DType = choices("DType", DTYPES)
Codec = choices("Codec", CODECS)
Precision = choices("Precision", PRECISIONS)


class Channels(str, Enum):
    mono = "mono"
    stereo = "stereo"


def parse_ints(text: str | None, option: str) -> tuple[int, ...] | None:
    """``"0,1"`` or ``"0-12"`` or ``"0-3,8"`` -> a tuple of ints.

    >>> parse_ints("0-3,8", "--layers")
    (0, 1, 2, 3, 8)
    """
    if text is None or text.strip() in ("", "all"):
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise UserError(f"{option} {text!r}: give numbers like 0,1 or ranges like 0-12") from None
    return tuple(sorted(set(out)))


@app.command()
@report_user_errors
def extract(
    dataset: Annotated[Dataset, typer.Argument(help="Which reader: a published dataset, 'folder' for your own audio, or 'demo'.")],
    root: Annotated[Optional[Path], typer.Option(help="The dataset as it ships (not needed for demo).")] = None,
    out: Annotated[Optional[str], typer.Option(help="Store path or URL [default: store/DATASET.zarr].")] = None,
    storage_options: Annotated[Optional[str], typer.Option(help="fsspec options for a URL --out, as JSON (default: $MRNET_STORAGE_OPTIONS, then the AWS_* variables).")] = None,
    features: Annotated[Optional[Features], typer.Option(help="wavlm (default) or mel; demo defaults to mel, Melon is mel only.")] = None,
    model: Annotated[str, typer.Option(help="WavLM hub name or local directory.")] = "microsoft/wavlm-base",
    revision: Annotated[Optional[str], typer.Option(help="Hub revision (commit, tag or branch) of --model.")] = None,
    layers: Annotated[Optional[str], typer.Option(help="Hidden states to store, e.g. 0-12 (all, default) or 0,6,12.")] = None,
    dtype: Annotated[DType, typer.Option(help="Stored precision.")] = DType["float16"],
    channels: Annotated[Channels, typer.Option(help="mono (downmix) or stereo (each channel separately; mono duplicated).")] = Channels.mono,
    gpus: Annotated[Optional[str], typer.Option(help="GPU ids, one Dask worker each, e.g. 0,1.")] = None,
    workers: Annotated[int, typer.Option(help="CPU Dask workers (0: run in this process).")] = 0,
    scheduler: Annotated[Optional[str], typer.Option(help="Run on an existing Dask cluster, e.g. tcp://host:8786 (dataset root and --out must be reachable from its workers).")] = None,
    threads: Annotated[int, typer.Option(help="Torch threads per worker (0: automatic). Equal counts give bitwise-equal features across runs.")] = 0,
    io_threads: Annotated[int, typer.Option(help="Decoding and writing threads per worker (0: its share of the machine's cores).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Equal-length windows per forward pass.")] = 8,
    window_seconds: Annotated[float, typer.Option(help="Tracks longer than this are cut into windows of this length.")] = 40.0,
    precision: Annotated[Precision, typer.Option(help="Model precision: auto = bf16 on GPU, fp32 on CPU.")] = Precision["auto"],
    normalize: Annotated[Optional[bool], typer.Option("--normalize/--no-normalize", help="Normalise each window to zero mean, unit variance [default: as the model's preprocessor says].")] = None,
    codec: Annotated[Codec, typer.Option(help="Chunk compression (see docs/store.md).")] = Codec["none"],
    chunk_frames: Annotated[int, typer.Option(help="Frames per inner chunk (see docs/store.md).")] = 150,
    unit_size: Annotated[int, typer.Option(help="Tracks per work unit (the grain of the queue and of resume).")] = 16,
    labels: Annotated[Optional[Path], typer.Option(help="folder: CSV/Parquet of path,genre[,artist,split,fold].")] = None,
    labeling: Annotated[Optional[str], typer.Option(help="FMA: top (16 roots, default) or all (every genre, the paper's FMA-large task).")] = None,
    folds: Annotated[int, typer.Option(help="k for seeded stratified k-fold where no official split exists.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the fold assignment.")] = 0,
    split_files: Annotated[Optional[Path], typer.Option(help="Folder with train.txt, valid.txt, test.txt of relative paths.")] = None,
    fold_files: Annotated[Optional[list[Path]], typer.Option(help="Text files of relative paths, one per fold (repeat the option).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N tracks (a trial run).")] = None,
    manifests_dir: Annotated[Path, typer.Option(help="Where the dataset's manifests go.")] = Path("manifests"),
    overwrite: Annotated[bool, typer.Option(help="Delete an existing store at --out first.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="Try tracks that failed in an earlier run again.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print tracks, audio hours, store size and time; write nothing.")] = False,
) -> None:
    """Extract frame-level features of a dataset into a Zarr feature store."""
    console = Console(stderr=False)
    if dataset.value == "demo" and features is None:
        console.print("[yellow]demo:[/] using --features mel (WavLM weights need a download; pass --features wavlm to use them).")
    cfg = ExtractConfig(
        dataset=dataset.value, root=root, out=out, manifests_dir=manifests_dir, features=features and features.value, model=model,
        revision=revision, layers=parse_ints(layers, "--layers"), dtype=dtype.value, channels=1 if channels == Channels.mono else 2,
        batch_size=batch_size, window_seconds=window_seconds, precision=precision.value, normalize=normalize,
        codec=codec.value, chunk_frames=chunk_frames, unit_size=unit_size, gpus=parse_ints(gpus, "--gpus") or (),
        workers=workers, threads=threads, io_threads=io_threads, scheduler=scheduler, labels=labels, labeling=labeling, folds=folds, seed=seed, split_files=split_files,
        fold_files=tuple(fold_files or ()), limit=limit, overwrite=overwrite, retry_failed=retry_failed,
        storage_options=storage_options_from_json(storage_options),
    )
    if dry_run:
        _dry_run(cfg, console)
        return
    from mrnet.extract.pipeline import run
    from mrnet.extract.progress import RunProgress, failed_table, summary_table

    with RunProgress(console, f"extract {cfg.dataset}") as bar:
        summary = run(cfg, on_scan=lambda found: _print_notes(console, found), on_start=bar.start, on_unit=bar.unit)
    console.print(summary_table(summary))
    failed = failed_table(summary)
    if failed is not None:
        console.print(failed)
    console.print(f"Store: [bold]{summary.store}[/]   Manifests: {cfg.manifests_dir / cfg.dataset}/")
    if summary.statistics:
        console.print(f"[yellow]note:[/] {summary.statistics}")


def _print_notes(console: Console, found) -> None:
    console.print(f"{found.name}: {found.tracks.height} tracks, {found.genres.height} genres ({found.labeling} labels) under {found.root}")
    for note in found.notes:
        console.print(f"[yellow]note:[/] {note}")


def _dry_run(cfg: ExtractConfig, console: Console) -> None:
    from mrnet.extract.dryrun import estimate

    with console.status("scanning and timing a sample..."):
        est = estimate(cfg)
    workers = max(len(cfg.gpus), cfg.workers, 1)
    table = Table(title=f"mrnet-extract {cfg.dataset} --dry-run (nothing written)", show_header=False)
    table.add_row("tracks", f"{est.tracks} ({est.unreadable} unreadable or missing, {est.already_done} already in {cfg.store})")
    table.add_row("audio", f"{est.audio_hours:.2f} h")
    table.add_row("store size", f"{est.store_bytes / 1e9:.2f} GB uncompressed ({est.bytes_per_audio_second / 1e6:.3f} MB per audio second)")
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
        Console(stderr=True).print("[yellow]interrupted:[/] finished units are kept; run the same command again to resume.")
        sys.exit(130)
