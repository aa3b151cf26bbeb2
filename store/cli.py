"""``mrnet-store``: inspect, check, list and copy feature stores, by local path or URL.

    mrnet-store info store/gtzan-wavlm.zarr
    mrnet-store verify s3://team-features/gtzan-wavlm.zarr --workers 8
    mrnet-store ls s3://team-features/
    mrnet-store cp s3://team-features/gtzan-wavlm.zarr store/ --verify
    mrnet-store repair store/gtzan-wavlm.zarr

URLs take credentials and endpoint from the backend's usual configuration (for S3: ``AWS_*``
variables including ``AWS_ENDPOINT_URL``, or ``~/.aws``), or from ``--storage-options JSON`` /
``$MRNET_STORAGE_OPTIONS``. Each command is a thin shell over a library function: ``store_info``,
``verify_store``, ``list_stores``, ``copy_store``, ``repair_store``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mrnet.core.cli import Command
from mrnet.core.errors import UserError, report_user_errors
from mrnet.manifests.schema import status_counts
from mrnet.store.copy import copy_store, destination_for
from mrnet.store.info import store_info
from mrnet.store.listing import list_stores
from mrnet.store.location import Location, storage_options_from_json
from mrnet.store.reader import FeatureStore
from mrnet.store.repair import repair_store
from mrnet.store.verify import VerifyReport, verify_store

app = typer.Typer(
    help="Inspect, check, list and copy mrnet feature stores (local paths or URLs).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
WORKERS = 4  # threads of verify and cp on local stores

Store = Annotated[str, typer.Argument(help="Store path or URL (s3://bucket/x.zarr).", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.", metavar="", show_default=False)]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        show_default=False,
        help="Tracks or objects handled in parallel (threads). \\[default: 4 for a local store; for a URL one per millisecond "
        "of its round trip, up to 64]",
    ),
]
Options = Annotated[
    str | None,
    typer.Option(
        "--storage-options",
        metavar="JSON",
        show_default=False,
        help='fsspec options for URLs, e.g. \'{"endpoint_url": "http://minio:9000"}\'. \\[default: $MRNET_STORAGE_OPTIONS]',
    ),
]


@app.command(cls=Command)
@report_user_errors
def info(store: Store, as_json: AsJson = False, storage_options: Options = None) -> None:
    """Provenance, track counts, genres, failed tracks and size of a store."""
    with _user_errors(store):
        data = store_info(FeatureStore.open(_location(store, storage_options)))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_info(data)


@app.command(cls=Command)
@report_user_errors
def verify(store: Store, workers: Workers = None, as_json: AsJson = False, storage_options: Options = None) -> None:
    """Check every done track: array present, shape, shard, checksum. Exit status 1 if anything is wrong."""
    with _user_errors(store):
        report = _verify(_location(store, storage_options), workers)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


@app.command(cls=Command)
@report_user_errors
def stats(store: Store, storage_options: Options = None) -> None:
    """Compute the per-dimension feature statistics of a finished store (for mrnet-train --normalize stored).

    Extraction records them on the way; this is for stores written before that, or whose labels or
    splits changed since. One pass over every done track.
    """
    from mrnet.store import statistics

    with _user_errors(store):
        st = FeatureStore.open(_location(store, storage_options))
        if not st.finalized:
            raise UserError(
                f"{st.location.url} is not finished (no manifest/tracks.parquet). Finish it with mrnet-extract first."
            )
        with _progress("stats", status_counts(st.tracks)["done"]) as update:
            groups = statistics.compute(st.tracks, lambda key: st.read(key), on_track=lambda: update(1))
        index = statistics.write(st.location, groups, how="computed by mrnet-store stats over the stored values")
    out.print(
        f"[green]OK[/]: statistics of {index['frames']:,} frames in {len(index['groups'])} groups written to "
        f"{escape(st.location.url)}/{statistics.ARRAYS}",
        soft_wrap=True,
    )


@app.command("ls", cls=Command)
@report_user_errors
def ls(
    where: Annotated[str, typer.Argument(help="Folder or bucket prefix holding stores.")] = "store",
    as_json: AsJson = False,
    storage_options: Options = None,
) -> None:
    """The stores in a folder or under a bucket prefix: name, dataset, task (genres or tags), feature, model, layers, channels, dtype, tracks, extracted tracks per split or fold, size."""
    with _user_errors(where):
        stores = list_stores(_location(where, storage_options))
    if as_json:
        typer.echo(json.dumps(stores, indent=2))
        return
    table = Table(
        "name",
        "dataset",
        "task",
        "feature",
        "model",
        "layers",
        "channels",
        "dtype",
        "tracks",
        "parts",
        "size",
        title=escape(where),
    )
    for s in stores:
        tracks = f"{s['done']}/{s['tracks']} done" if s["finalized"] else "[yellow]unfinished[/]"
        if s.get("damaged"):
            table.add_row(
                escape(s["name"]),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"[red]{escape(s['damaged'])}[/]",
                "",
                _size(s["size_bytes"]),
            )
            continue
        channels = {1: "mono", 2: "stereo"}.get(s["channels"], str(s["channels"]))
        table.add_row(
            escape(s["name"]),
            escape(s["dataset"] or "-"),
            {"single-label": "genres", "multi-label": "tags"}.get(str(s["task"]), str(s["task"])),
            s["feature"],
            escape(str(s["model"] or "-")),
            _layers(s["layer_ids"]),
            channels,
            str(s["dtype"]),
            tracks,
            _parts(s.get("parts")),
            _size(s["size_bytes"]),
        )
    out.print(table if stores else f"no stores under {escape(where)}")


@app.command(cls=Command)
@report_user_errors
def cp(
    src: Annotated[str, typer.Argument(help="Store to copy (path or URL).", show_default=False)],
    dst: Annotated[
        str,
        typer.Argument(help="Destination store; ending in '/' copies into that folder or prefix.", show_default=False),
    ],
    workers: Workers = None,
    then_verify: Annotated[
        bool, typer.Option("--verify", help="Verify the copy afterwards.", metavar="", show_default=False)
    ] = False,
    storage_options: Options = None,
) -> None:
    """Copy a store between a path and a URL. Rerun after an interruption: finished objects are skipped."""
    with _user_errors(src, dst):
        source = _location(src, storage_options)
        target = _location(destination_for(source, dst), storage_options)
        with _progress("copy", bytes_=True) as update:
            workers = workers or _in_flight(source, target)
            result = copy_store(
                source,
                target,
                workers=workers,
                on_start=lambda n, size: update(total=size),
                on_object=lambda rel, size: update(size),
            )
        out.print(
            f"copied {result.copied} objects ({_size(result.bytes_copied)}), skipped {result.skipped} already there "
            f"({_size(result.bytes_skipped)}): {escape(result.dst)}",
            soft_wrap=True,
        )
        if then_verify:
            report = _verify(target, workers)
            _print_report(report)
            raise typer.Exit(0 if report.ok else 1)


@app.command(cls=Command)
@report_user_errors
def repair(store: Store, storage_options: Options = None) -> None:
    """Restore a store's root metadata from the copy mrnet keeps, and remove a killed writer's temporary files."""
    with _user_errors(store):
        done = repair_store(_location(store, storage_options))
    for line in done or ["nothing to repair"]:
        out.print(escape(line), soft_wrap=True)
    out.print(f"Check it with: mrnet-store verify {escape(store)}", soft_wrap=True)


def main() -> None:
    """Entry point of ``mrnet-store``."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]interrupted:[/] run the same command again; a copy resumes where it stopped.")
        sys.exit(130)


# --- helpers -----------------------------------------------------------------------------------
def _location(text: str, options: str | None) -> Location:
    return Location.parse(text, None if options is None else storage_options_from_json(options))


def _storage_errors() -> tuple[type[Exception], ...]:
    """Errors of reaching storage: OSError, and botocore's own (no endpoint, no credentials) where installed."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover - s3fs is a dependency
        return (OSError,)
    return (OSError, BotoCoreError)


@contextmanager
def _user_errors(*where: str) -> Iterator[None]:
    """Storage that cannot be reached (no such endpoint, no credentials, no such bucket) is a ``UserError``
    naming the location (``where``: the paths or URLs the command was given), not a traceback."""
    try:
        yield
    except FileNotFoundError as error:
        buckets = [w for w in where if "://" in w and not w.startswith("file://")]
        if "bucket" not in str(error).lower() or not buckets:
            raise _storage_error(error) from error
        names = ", ".join(
            sorted({b.split("://", 1)[0] + "://" + b.split("://", 1)[1].split("/", 1)[0] for b in buckets})
        )
        raise UserError(
            f"{', '.join(buckets)}: the bucket does not exist ({error}). Check the bucket's name in the URL "
            f"({names}) and the endpoint, or create the bucket first (aws s3 mb ...)."
        ) from error
    except _storage_errors() as error:
        raise _storage_error(error) from error


def _storage_error(error: Exception) -> UserError:
    return UserError(
        f"{type(error).__name__}: {error}\nCheck the path or URL, and for a URL the endpoint and credentials "
        "(AWS_* variables, --storage-options or $MRNET_STORAGE_OPTIONS; see docs/sharing.md)."
    )


def _in_flight(*locations: Location) -> int:
    """Default ``--workers``: 4 for local stores, more for a URL with a long round trip (``Location.concurrency``)."""
    return max(loc.concurrency(WORKERS) for loc in locations)


def _verify(location: Location, workers: int | None) -> VerifyReport:
    """``verify_store`` with a progress bar (its total unknown when the manifest cannot be read)."""
    workers = workers or _in_flight(location)
    try:
        total = status_counts(FeatureStore.open(location).tracks)["done"]
    except UserError:
        total = None
    with _progress("verify", total) as update:
        return verify_store(location, workers=workers, on_track=lambda: update(1))


@contextmanager
def _progress(what: str, total: int | None = None, *, bytes_: bool = False) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr (shown on terminals only); yields ``update(advance=0, total=None)``."""
    count = DownloadColumn() if bytes_ else MofNCompleteColumn()
    with Progress(
        TextColumn(what),
        BarColumn(),
        count,
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda advance=0, total=None: bar.update(task, advance=advance, total=total)


def _layers(ids: list[int]) -> str:
    """Stored layers compactly: ``_layers([0, 1, 2, 3, 8]) == '0-3, 8'``."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs) or "-"


def _size(n: int | None) -> str:
    """Bytes for people: ``_size(1536) == '1.5 KiB'``."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # unreachable


def _parts(parts: dict[str, int] | None) -> str:
    """Extracted tracks per split or fold: ``train 80  valid 10  test 10``."""
    return "  ".join(f"{name} {n}" for name, n in parts.items()) if parts else "-"


def _print_info(data: dict) -> None:
    p, c = data["provenance"], data["counts"]
    table = Table(show_header=False, title=escape(data["store"]), title_justify="left")
    rows = {
        "feature": f"{p['feature']}  model {p['model'] or '-'}  revision {p['model_revision'] or '-'}",
        "layers": f"{p['layers']}  dim {p['dim']}  channels {p['channels']}",
        "dtype": p["dtype"],
        "frame rate": f"{p['frame_rate']:g} frames/s  (audio at {p['sample_rate']} Hz)",
        "dataset": f"{p['dataset'] or '-'}  labeling {p['labeling'] or '-'}",
        "task": f"{p.get('task', 'single-label')}  ({len(data['genres'])} {'tags' if p.get('task') == 'multi-label' else 'genres'})",
        "extraction": ", ".join(f"{k}={v}" for k, v in p["extraction"].items()) or "-",
        "versions": ", ".join(f"{k} {v}" for k, v in p["versions"].items()) or "-",
        "format": f"version {p['format_version']}"
        + ("" if data["finalized"] else "  [yellow](unfinished: journal only)[/]"),
        "tracks": f"{c['tracks']}  done {c['done']}  failed {c['failed']}  pending {c['pending']}",
        "extracted per part": _parts(data.get("parts")),
        "audio": f"{data['audio_hours']:g} h  ({data['frames']:,} frames)",
        "size": _size(data["size_bytes"]),
        "statistics": "per split and fold (mrnet-train --normalize stored)"
        if data.get("statistics")
        else "none (mrnet-store stats computes them)",
    }
    for name, value in rows.items():
        table.add_row(name, value if name in ("format",) else escape(value))
    out.print(table)
    noun = "tag" if p.get("task") == "multi-label" else "genre"
    genres = Table(
        noun, "tracks", "failed", title=f"{noun}s (tracks: extracted, failed ones apart)", title_justify="left"
    )
    for g in data["genres"]:
        genres.add_row(escape(str(g["name"])), str(g["count"]), str(g.get("failed", 0)))
    out.print(genres)
    if data["failed"]:
        failed = Table("track", "path", "error", title=f"failed tracks ({len(data['failed'])})", title_justify="left")
        for f in data["failed"]:
            failed.add_row(escape(f["track_id"]), escape(f["path"] or ""), escape(f["error"] or ""))
        out.print(failed)


def _print_report(report: VerifyReport) -> None:
    for note in report.notes:
        out.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
    if report.ok:
        out.print(f"[green]OK[/]: {report.checked} tracks checked in {escape(report.store)}", soft_wrap=True)
        return
    table = Table("track", "key", "problem", title=f"problems in {escape(report.store)}", title_justify="left")
    for p in report.problems:
        table.add_row(escape(p.track_id or "(store)"), escape(p.key or "-"), escape(p.what))
    out.print(table)
    out.print(f"[red]{len(report.problems)} problem(s)[/] in {report.checked} tracks checked")


if __name__ == "__main__":
    main()
