"""Recorded figures the page quotes by name: the before and after of each applied fix.

A fix's "before" is measured once, in a run of the code as it was (or with it put back beside the
shipped code), and that run's result file is kept; nothing re-creates old code to measure it again.
``benchmarks/results/history/before-after.json`` names those files (``runs``) and the values the page
quotes from them (``values``: run, dotted path, digits); ``recorded`` reads them into template values:
each value by its name, and per run ``commit_<run>`` (the commit the run measured) and ``file_<run>``.
The run ``current`` is the CPU result the page shows.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import RESULTS
from benchmarks.tables import commit, f, shown

LEDGER = RESULTS / "history" / "before-after.json"
MISSING = "–"


def recorded(current: tuple[Path, dict] | None, ledger: Path = LEDGER) -> dict[str, str]:
    """Template values for every run and value the ledger names; ``–`` for whatever no file holds."""
    spec = json.loads(ledger.read_text())
    runs = {name: _load(RESULTS / rel) for name, rel in spec["runs"].items()}
    runs["current"] = current
    out = {}
    for name, pick in runs.items():
        out[f"commit_{name}"] = commit(pick[1]) if pick else MISSING
        out[f"file_{name}"] = shown(pick[0]) if pick else MISSING
    for name, (run, paths, digits) in spec["values"].items():
        value = lookup(runs[run][1], paths) if runs.get(run) else None
        out[name] = number(value, digits)
    return out


def _load(path: Path) -> tuple[Path, dict] | None:
    return (path, json.loads(path.read_text())) if path.exists() else None


def lookup(data: dict, paths: str | list[str]):
    """The value at the first dotted path (of one or several) that ``data`` holds; None if none does."""
    for path in [paths] if isinstance(paths, str) else paths:
        node = data
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return node
    return None


def number(value, digits: int) -> str:
    """A recorded value as the page prints it; lists (rounds) comma-separated."""
    if value is None:
        return MISSING
    if isinstance(value, list):
        return ", ".join(f(float(x), digits) for x in value)
    return f(float(value), digits)
