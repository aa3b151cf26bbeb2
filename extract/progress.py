"""What a user watches during a run: tracks, audio hours per second, GB written, ETA; then a summary."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mrnet.extract.pipeline import RunSummary
from mrnet.extract.worker import UnitResult
from mrnet.manifests.schema import status_counts


class RunProgress:
    """Rich progress bar fed by ``pipeline.run``'s callbacks."""

    def __init__(self, console: Console, label: str):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tracks"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[written]}"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None  # added by start(), once the scan knows how many tracks are to go
        self.label = label
        self.audio = 0.0
        self.bytes = self.failed = self.tracks = 0
        self.began = time.perf_counter()

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def start(self, already: int, todo: int) -> None:
        if already:
            self.console.print(
                f"[green]{already}[/] tracks done (or failed) in earlier runs: resuming with {todo} to go."
            )
        self.task = self.progress.add_task(self.label, total=todo, rate="", written="", failed="")
        self.began = time.perf_counter()

    def unit(self, result: UnitResult) -> None:
        self.audio += result.audio_seconds
        self.bytes += result.bytes_written
        self.failed += sum(r["status"] == "failed" for r in result.rows)
        self.tracks += sum(r["status"] == "done" for r in result.rows)
        elapsed = max(time.perf_counter() - self.began, 1e-9)
        assert self.task is not None, "the pipeline calls start() before its first unit"
        self.progress.update(
            self.task,
            advance=len(result.rows),
            rate=f"{self.audio / 3600 / elapsed:.4f} audio-h/s",
            written=f"{self.bytes / 1e9:.2f} GB",
            failed=f"[red]{self.failed} failed[/]" if self.failed else "",
        )


def summary_table(summary: RunSummary) -> Table:
    t = summary.tracks
    counts = status_counts(t)
    table = Table(title=f"mrnet-extract: {summary.store}", show_header=False)
    table.add_row(
        "tracks", f"{t.height}  ({counts['done']} done, {counts['failed']} failed, {counts['pending']} pending)"
    )
    table.add_row(
        "this run", f"{t.height - summary.skipped - counts['pending']} tracks, {summary.skipped} done in earlier runs"
    )
    table.add_row(
        "audio",
        f"{summary.audio_seconds / 3600:.2f} h in {summary.seconds:.0f} s "
        f"({summary.audio_seconds / max(summary.seconds, 1e-9):.1f} audio-s/s)",
    )
    table.add_row("written", f"{summary.bytes_written / 1e9:.3f} GB of features")
    if summary.warned.height:
        table.add_row("warnings", f"{summary.warned.height} done tracks are suspect (listed below)")
    return table


def failed_table(summary: RunSummary, limit: int = 20) -> Table | None:
    return _track_table(
        summary.failed,
        "error",
        f"{summary.failed.height} failed tracks (recorded in the manifest; the run went on)",
        limit,
    )


def warned_table(summary: RunSummary, limit: int = 20) -> Table | None:
    title = f"{summary.warned.height} tracks kept with a warning (the manifest's warning column; filter them out if you wish)"
    return _track_table(summary.warned, "warning", title, limit)


def _track_table(tracks, column: str, title: str, limit: int) -> Table | None:
    if tracks.height == 0:
        return None
    table = Table(title=title)
    table.add_column("track")
    table.add_column(column, overflow="fold")
    for tid, text in tracks.select("track_id", column).head(limit).iter_rows():
        table.add_row(tid, text or "")
    if tracks.height > limit:
        table.add_row("…", f"{tracks.height - limit} more: see the manifest's {column} column")
    return table
