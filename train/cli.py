"""The entry points of ``mrnet-train``, ``mrnet-predict``, ``mrnet-report`` and ``mrnet-compare``: thin
command lines over ``mrnet.train``, one module each.

- ``cli_train``: ``mrnet-train`` (its options are declared in ``cli_options``) calls ``launch.train`` or
  ``launch.resume``;
- ``cli_predict``: ``mrnet-predict`` calls ``predict.Predictor`` or ``predict_store.write_split``;
- ``cli_results``: ``mrnet-report`` and ``mrnet-compare`` call ``report.rerender`` and ``compare``.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from mrnet.train.cli_predict import predict_app
from mrnet.train.cli_results import compare_app, report_app
from mrnet.train.cli_train import train_app


def _main(app: typer.Typer) -> None:
    try:
        app()
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)


def train_main() -> None:
    """Entry point of ``mrnet-train``."""
    _main(train_app)


def predict_main() -> None:
    """Entry point of ``mrnet-predict``."""
    _main(predict_app)


def report_main() -> None:
    """Entry point of ``mrnet-report``."""
    _main(report_app)


def compare_main() -> None:
    """Entry point of ``mrnet-compare``."""
    _main(compare_app)


__all__ = [
    "compare_app",
    "compare_main",
    "predict_app",
    "predict_main",
    "report_app",
    "report_main",
    "train_app",
    "train_main",
]
