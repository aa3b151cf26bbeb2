"""``mrnet-probe-layers``: a thin command line over ``layer_probe.probe_layers`` and ``layer_probe.write``,
with rich progress over the tracks read and the layers fitted."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mrnet.core.cli import Command
from mrnet.core.errors import report_user_errors
from mrnet.store.location import Location
from mrnet.train import layer_probe
from mrnet.train.display import progress_bars
from mrnet.train.formats import FORMAT_HELP, parse_formats
from mrnet.train.tasks import label, show

probe_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


class RichProgress(layer_probe.Progress):
    """Two bars: the tracks read (each once, all layers), then the layers fitted, each layer's test metric above them."""

    def __init__(self, console: Console):
        self.console = console
        self.bars = progress_bars(console)

    def reading(self, tracks: int) -> None:
        self.bars.start()
        self.read = self.bars.add_task("reading tracks", total=tracks, info="every layer, once")

    def track(self) -> None:
        self.bars.advance(self.read)

    def fitting(self, layers: int) -> None:
        self.fit = self.bars.add_task("fitting layers", total=layers, info="")

    def layer(self, row: dict) -> None:
        (metric, value), low_high = next(iter(row["test"].items())), next(iter(row["interval"].values()))
        interval = "" if math.isnan(low_high[0]) else f" [{show(metric, low_high[0])}, {show(metric, low_high[1])}]"
        self.console.print(
            f"layer {row['layer']}: test {label(metric)} {show(metric, value)}{interval}, C = {row['C']:g}",
            highlight=False,
        )
        self.bars.advance(self.fit)
        self.bars.update(self.fit, info=f"layer {row['layer']} done")

    def stop(self) -> None:
        self.bars.stop()


def console_table(result: dict) -> Table:
    first, second = result["metrics"]
    table = Table(title=f"Linear probe per layer ({escape(result['split'])})")
    for name in (
        "layer",
        f"test {label(first)}",
        "95 % interval",
        f"test {label(second)}",
        f"valid {label(first)}",
        "C",
    ):
        table.add_column(name, justify="right")
    for row in result["layers"]:
        low, high = row["interval"][first]
        best = row["layer"] == result["best_layer"] and len(result["layers"]) > 1
        table.add_row(
            f"[bold]{row['layer']}[/]" if best else str(row["layer"]),
            show(first, row["test"][first]),
            f"{show(first, low)} – {show(first, high)}",
            show(second, row["test"][second]),
            show(first, row["valid"][first]),
            f"{row['C']:g}",
        )
    return table


def default_out(store: str) -> Path:
    """``layer-probes/<store name>``."""
    return Path("layer-probes") / (Location.parse(store).name.removesuffix(".zarr") or "store")


@probe_app.command(cls=Command)
@report_user_errors
def probe_layers(
    store: Annotated[str, typer.Option(help="Feature store: a path or URL (s3://...).", show_default=False)],
    run: Annotated[
        Path | None,
        typer.Option(
            help="An MRNet run folder trained on this store: its learned layer weights go beside the probe.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where layers.md, layers.json and layers.png go.", show_default="layer-probes/STORE"),
    ] = None,
    fold: Annotated[
        int | None,
        typer.Option(
            help="Probe fold K of a k-fold store (test = K, valid = K+1).",
            show_default="the official split, the run's, or fold 0",
        ),
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
) -> None:
    """The linear probe (--model linear) fitted on each stored layer alone: test accuracy (ROC-AUC for tags) per
    layer with its 95 % bootstrap interval, as a table (Markdown, JSON) and a plot, beside MRNet's learned
    layer weights when --run names a run on this store. Reads the stored features; extracts nothing."""
    from mrnet.train.setup import open_store

    formats = parse_formats(fmt)
    console = Console()
    opened = open_store(store)
    progress = RichProgress(console)
    try:
        result = layer_probe.probe_layers(opened, fold=fold, run=run, progress=progress)
    finally:
        progress.stop()
    target = out or default_out(store)
    png = layer_probe.write(result, target, formats)
    console.print(console_table(result))
    console.print(escape(layer_probe.notes(result)), highlight=False)
    console.print(
        f"Wrote {escape(str(target / 'layers.md'))}, layers.json and {escape(png.name)}"
        + (f" ({', '.join(f for f in formats if f != 'png')} beside it)" if len(formats) > 1 else ""),
        highlight=False,
    )


def main() -> None:
    """Entry point of ``mrnet-probe-layers``."""
    try:
        probe_app()
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":  # python -m mrnet.train.cli_probe: the command without an installed entry point
    main()
