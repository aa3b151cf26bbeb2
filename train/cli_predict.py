"""``mrnet-predict``: the top genres (or tags) of audio files from a finished run (``predict.Predictor``),
or a predictions table of a store's split (``predict_store.write_split``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mrnet.core.cli import Command, flag
from mrnet.core.errors import UserError, report_user_errors

predict_app = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)


@predict_app.command(cls=Command)
@report_user_errors
def predict(
    run: Annotated[
        Path,
        typer.Argument(
            help="A finished run folder: one split, one fold-K folder, or a --folds all run (its folds' models averaged).",
            exists=True,
            file_okay=False,
        ),
    ],
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Audio files (WAV, FLAC, MP3, OGG...), folders of them, or CSV files listing them (a 'path' column).",
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="How many genres (or tags) to show per file.", min=1)] = 3,
    as_json: Annotated[
        bool, flag("--json", help="One JSON document on stdout, for machines.", panel="Options")
    ] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    store: Annotated[
        str | None,
        typer.Option(
            help="Predict the tracks of a feature store instead of audio files (no decoding): a store of the features the run was trained on."
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(help="With --store: the split to predict (train, valid or test; a --folds all run: each fold's)."),
    ] = "test",
    embeddings: Annotated[
        bool,
        flag(
            "--embeddings",
            help="With --store: add each track's pooled embedding (the model's penultimate vector).",
            panel="Options",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="With --store: the predictions table to write.", show_default="RUN/predictions-SPLIT.parquet"
        ),
    ] = None,
) -> None:
    """Top genres (or tags) of audio files, with probabilities, from a run's validation-selected model; with --store, a
    predictions table (predictions.parquet's schema, docs/training.md) of a split of stored features."""
    from mrnet.train.predict import Predictor, files_from, predict_files

    console, errors = Console(), Console(stderr=True)
    if store is not None:
        from mrnet.train.predict_store import write_split

        if files:
            raise UserError("--store predicts the tracks of a store: give either audio files or --store, not both")
        console.print(
            escape(write_split(run, store, split, embeddings=embeddings, out=out, device=device)), highlight=False
        )
        return
    if not files:
        raise UserError(
            "give audio files (or folders, or CSV lists of them) to predict, or --store STORE --split test to predict stored tracks"
        )
    predictor = Predictor.open(run, device=device)
    results = predict_files(predictor, files_from(files), top=top)
    failed = [r for r in results if r.error is not None]
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in failed:
            errors.print(f"[red]failed:[/] {escape(str(r.error))}", highlight=False)
        kind = "tag" if predictor.multilabel else "genre"
        ensemble = f", {len(predictor.models)} folds averaged" if len(predictor.models) > 1 else ""
        table = Table(title=f"mrnet-predict ({escape(str(run))}{ensemble})")
        for col in ("file", kind, "probability"):
            table.add_column(col, justify="right" if col == "probability" else "left")
        for r in results:
            for i, (label, p) in enumerate(r.top):
                mark = " *" if r.tagged is not None and label in r.tagged else ""
                table.add_row(
                    escape(r.path) if i == 0 else "", label + mark, f"{100 * p:.1f}%", end_section=i == len(r.top) - 1
                )
        if predictor.multilabel and predictor.threshold is not None:
            table.caption = f"* at or above the threshold chosen on validation ({predictor.threshold:.2f})"
        console.print(table)
        if failed:
            errors.print(f"[red]{len(failed)} of {len(results)} files failed[/] (named above).")
    if failed:
        raise typer.Exit(1)
