"""``mrnet-report`` and ``mrnet-compare``: thin command lines over ``report.rerender`` and ``compare``.

Their entry points are in ``cli.py`` with the others; ``--format`` (figure formats) is shared with ``mrnet-train``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mrnet.core.cli import Command
from mrnet.core.errors import report_user_errors
from mrnet.train.formats import FORMAT_HELP, parse_formats
from mrnet.train.render import pct
from mrnet.train.runs import PartialMetricsLine, RunFolder

# --- mrnet-report -------------------------------------------------------------------------------

report_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@report_app.command()
@report_user_errors
def report(
    run: Annotated[
        Path,
        typer.Argument(
            help="A run folder written by mrnet-train, or a folder of fold-<k>/ runs trained separately (--fold K --out DIR/fold-K).",
            exists=True,
            file_okay=False,
        ),
    ],
    fmt: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
) -> None:
    """Metrics table of a run; rewrites its report.md and plots (PNG). A folder of separately trained
    folds gets the report of a --folds all run."""
    console = Console()
    with warnings.catch_warnings(record=True) as caught:  # a metrics.jsonl cut short is read up to its last whole line
        warnings.simplefilter("always", PartialMetricsLine)
        _report(console, run, fmt)
    for text in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, PartialMetricsLine)):
        Console(stderr=True).print(f"[yellow]warning:[/] {escape(text)}", highlight=False)


def _report(console: Console, run: Path, fmt: str | None) -> None:
    from mrnet.train import aggregate
    from mrnet.train import report as reports

    folder = RunFolder(run)
    result: dict | None
    if aggregate.is_fold_collection(run):
        result = aggregate.aggregate_folds(run)
        if parse_formats(fmt) != ("png",):
            result = reports.rerender(run, parse_formats(fmt))
    elif (
        folder.config_file.exists() and folder.config().seeds
    ):  # a --seeds folder: its report once every seed has finished
        from mrnet.train import seeds as seeding

        console.print(seeding.summary_table(seeding.rerender(folder)))
        return
    else:
        folder.config()  # fails clearly on a folder that is not a run
        result = reports.rerender(run, parse_formats(fmt))
    if result is None:
        history = folder.metrics()
        last = history[-1] if history else None
        done = f"{last['epoch']} epochs done" if last else "no epoch finished yet"
        console.print(
            f"[yellow]{escape(str(run))} has not finished ({done}); resume it: mrnet-train --resume {escape(str(run))}[/]",
            highlight=False,
        )
        if last and "valid_accuracy" in last:
            console.print(
                f"last epoch: valid accuracy {pct(last['valid_accuracy'])}, macro-F1 {last['valid_macro_f1']:.3f}"
            )
        console.print(f"curves: {escape(str(folder.plots / 'curves.png'))}", highlight=False)
        return
    console.print(reports.summary_table(result))
    console.print(f"Wrote {escape(str(run / 'report.md'))} and plots in {escape(str(folder.plots))}", highlight=False)


# --- mrnet-compare ------------------------------------------------------------------------------

compare_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@compare_app.command(cls=Command)
@report_user_errors
def compare(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run folders, or folders holding runs (e.g. runs/).", exists=True, show_default=False),
    ],
    out: Annotated[Path, typer.Option(help="Where comparison.md, .json and .png go.")] = Path("comparison"),
    fmt: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
) -> None:
    """Finished runs side by side: test accuracy and macro-F1 (tags: ROC-AUC and PR-AUC) per configuration and test set, mean ± std over
    seeds (one run: its 95 % bootstrap interval), and a paired test for each pair of rows scored on the same test tracks."""
    from mrnet.train import compare as comparing
    from mrnet.train import routes

    rows = comparing.compare(runs)
    tests = comparing.paired_tests(rows)
    for table in [*comparing.console_tables(rows), comparing.console_tests(tests)]:
        if table is not None:
            Console().print(table)
    Console().print(
        f"Wrote {escape(str(comparing.write(rows, out, tests=tests, formats=parse_formats(fmt))))} and comparison.png",
        highlight=False,
    )
    weights = routes.route_weights(comparing.find_runs(runs))
    if len(weights) >= 2:
        Console().print(
            f"Route weights of {len(weights)} MRNet runs side by side: {escape(str(routes.plot_routes(out / 'routes.png', weights)))}",
            highlight=False,
        )
