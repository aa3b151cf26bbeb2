"""``mrnet-extract``: a thin command line over ``mrnet.extract.pipeline.run``; its options are declared in
``cli_options``."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mrnet.core.cli import Command, parse_gpus, parse_ints
from mrnet.core.errors import UserError, report_user_errors
from mrnet.extract import cli_options as opt
from mrnet.extract.config import ExtractConfig, manifest_folder
from mrnet.store.location import storage_options_from_json

app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@app.command(cls=Command)
@report_user_errors
def extract(
    dataset: opt.Dataset,
    # input
    root: opt.Root = None,
    labels: opt.Labels = None,
    labeling: opt.Labeling = None,
    tags: opt.Tags = None,
    label_column: opt.LabelColumn = None,
    keep_untagged: opt.KeepUntagged = False,
    split_files: opt.SplitFiles = None,
    fold_files: opt.FoldFiles = None,
    folds: opt.Folds = 10,
    seed: opt.Seed = 0,
    limit: opt.Limit = None,
    # features
    features: opt.Features = None,
    model: opt.Model = "microsoft/wavlm-base",
    revision: opt.Revision = None,
    trust_remote_code: opt.TrustRemoteCode = False,
    layers: opt.Layers = None,
    channels: opt.Channels = opt.ChannelsChoice.mono,
    dtype: opt.DType = opt.DTypeChoice["float16"],
    precision: opt.Precision = opt.PrecisionChoice["auto"],
    normalize: opt.Normalize = None,
    window_seconds: opt.WindowSeconds = 40.0,
    # output
    out: opt.Out = None,
    manifests_dir: opt.ManifestsDir = Path("manifests"),
    codec: opt.Codec = opt.CodecChoice["none"],
    chunk_frames: opt.ChunkFrames = 150,
    storage_options: opt.StorageOptions = None,
    overwrite: opt.Overwrite = False,
    retry_failed: opt.RetryFailed = False,
    dry_run: opt.DryRun = False,
    # machinery
    gpus: opt.Gpus = None,
    workers: opt.Workers = 0,
    scheduler: opt.Scheduler = None,
    threads: opt.Threads = 0,
    io_threads: opt.IoThreads = 0,
    batch_size: opt.BatchSize = 8,
    unit_size: opt.UnitSize = 16,
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
        channels=1 if channels == opt.ChannelsChoice.mono else 2,
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
    from mrnet.extract.dryrun import estimate, table

    with console.status("scanning and timing a sample..."):
        est = estimate(cfg)
    for note in est.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    console.print(table(est, cfg))


def main() -> None:
    """Entry point of ``mrnet-extract``."""
    try:
        app()
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "[yellow]interrupted:[/] finished units are kept; run the same command again to resume."
        )
        sys.exit(130)
