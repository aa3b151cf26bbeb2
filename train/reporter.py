"""What training tells its caller, as it goes: ``Reporter``, whose methods do nothing.

The CLI shows it with rich (``display.RichReporter``); a library caller passes its own subclass, or none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Reporter:
    """What training tells its caller; the CLI shows it with rich, library callers may ignore it."""

    def note(self, text: str) -> None: ...
    def start(self, *, run: Path, description: str, epochs: int, done: int, steps: int) -> None: ...
    def batch(self, *, epoch: int, step: int, steps: int, loss: float) -> None: ...
    def evaluation(
        self, *, part: str, done: int, total: int
    ) -> None: ...  # batches of an evaluation pass (0 at its start)
    def epoch(self, record: dict[str, Any]) -> None: ...
    def end(self) -> None: ...
