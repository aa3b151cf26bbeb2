"""Run folders: what a training run writes, and the checkpoints that make resuming it exact.

```
runs/<store>-<YYYYmmdd-HHMMSS>/
  config.json          the TrainConfig (seed included)
  store.json           the store's location and provenance, its genre names, the split used
  metrics.jsonl        one line per epoch: lr, training loss/accuracy, validation (and test) metrics
  checkpoints/last.pt  everything to continue: model, optimizer, scheduler, RNG states, epoch, history
  checkpoints/best.pt  the model at the epoch chosen on the validation split
  report.json          final metrics (mrnet-report re-renders report.md and the plots from it)
  report.md
  plots/*.png          training curves, confusion matrix, route and layer weights
  fold-<k>/            with --folds all: one such run folder per fold; the top folder aggregates
```

>>> import tempfile
>>> run = RunFolder(Path(tempfile.mkdtemp()) / "r")
>>> run.append_metrics({"epoch": 1, "train_loss": 0.5}); run.metrics()
[{'epoch': 1, 'train_loss': 0.5}]
"""

from __future__ import annotations

import io
import json
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.core.files import is_temporary, write_atomic
from mrnet.store.location import Location
from mrnet.train.config import TrainConfig
from mrnet.train.state import MODEL_NAME

CHECKPOINT_FORMAT = "mrnet-train-checkpoint/1"


def default_run_dir(store: str, *, root: Path = Path("runs"), now: float | None = None) -> Path:
    """``runs/<store name>-<YYYYmmdd-HHMMSS>``; a suffix keeps two runs started in one second apart.

    >>> default_run_dir("s3://b/fma_small.zarr", now=0).name.startswith("fma_small-1970")
    True
    """
    name = Location.parse(store).name.removesuffix(".zarr") or "store"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now) if now is not None else time.localtime())
    path, n = root / f"{name}-{stamp}", 2
    while path.exists():
        path, n = root / f"{name}-{stamp}-{n}", n + 1
    return path


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a killed run never leaves half a file."""
    write_atomic(path, (json.dumps(data, indent=2, default=_jsonable) + "\n").encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder, and reading/writing its small files."""

    path: Path

    config_file = property(lambda self: self.path / "config.json")
    store_file = property(lambda self: self.path / "store.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    last = property(lambda self: self.path / "checkpoints" / "last.pt")
    best = property(lambda self: self.path / "checkpoints" / "best.pt")
    report_file = property(lambda self: self.path / "report.json")
    plots = property(lambda self: self.path / "plots")

    def fold(self, k: int) -> RunFolder:
        return RunFolder(self.path / f"fold-{k}")

    @property
    def finished(self) -> bool:
        return self.report_file.exists()

    # --- small files ---------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        if not self.config_file.exists():
            raise UserError(f"{self.path} is not a training run (no config.json). Pass the folder mrnet-train wrote.")
        data = self._object(self.config_file, "the run's config")
        try:
            return TrainConfig.from_json(data)
        except TypeError as err:
            raise UserError(
                f"{self.config_file} is not a readable run config ({err}). {self._restore(self.config_file)}"
            ) from err
        except UserError as err:
            raise UserError(f"{self.config_file}: {err}. {self._restore(self.config_file)}") from err

    def store_info(self) -> dict:
        if not self.store_file.exists():
            raise UserError(
                f"{self.path} has no store.json: the run never opened its store. Start it again with mrnet-train --store."
            )
        return self._object(self.store_file, "the store the run was trained on")

    def report(self) -> dict:
        if not self.report_file.exists():
            raise UserError(
                f"{self.path} has no report.json: the run has not finished. Resume it: mrnet-train --resume {self.path}"
            )
        return self._object(self.report_file, "the run's final metrics")

    def _object(self, path: Path, what: str) -> dict:
        """One of the run's JSON files, which each hold an object; ``UserError`` naming the file otherwise."""
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{path} is not JSON ({err}); it records {what}. {self._restore(path)}") from err
        if not isinstance(data, dict):
            raise UserError(
                f"{path} holds a JSON {type(data).__name__}, not the object mrnet-train writes; it records {what}. {self._restore(path)}"
            )
        return data

    def _restore(self, path: Path) -> str:
        return f"Restore {path.name} from a backup (or a copy of the run), or start a new run with another --out."

    def clean_temporary(self) -> list[Path]:
        """Delete the temporary files a killed write left in the run folder, its checkpoints/ and plots/
        (``core.files.is_temporary``: the tool's own names only); returns them."""
        found = [
            p
            for folder in (self.path, self.path / "checkpoints", self.plots)
            if folder.is_dir()
            for p in folder.iterdir()
            if is_temporary(p.name) and p.is_file() and not p.is_symlink()
        ]
        for p in found:
            p.unlink(missing_ok=True)
        return found

    def append_metrics(self, record: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(record, default=_jsonable) + "\n")

    def rewrite_metrics(self, history: list[dict]) -> None:
        """Make metrics.jsonl match a checkpoint's history (on resume, drop epochs after it)."""
        write_atomic(self.metrics_file, "".join(json.dumps(r, default=_jsonable) + "\n" for r in history).encode())

    def metrics(self) -> list[dict]:
        """metrics.jsonl's records. A last line cut short (the file is appended in place; a run killed, or
        a disk filled, mid-line) is left out with a ``PartialMetricsLine`` warning; a bad line before it
        is damage, refused naming the line."""
        if not self.metrics_file.exists():
            return []
        lines = [
            (n, line)
            for n, line in enumerate(self.metrics_file.read_text(errors="replace").splitlines(), 1)
            if line.strip()
        ]
        records = []
        for i, (n, line) in enumerate(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            elif i == len(lines) - 1:
                warnings.warn(
                    PartialMetricsLine(
                        f"{self.metrics_file}: its last line (line {n}) is cut short and was left out; "
                        f"the {len(records)} whole epoch record(s) before it are read. mrnet-train --resume "
                        f"{self.path} rewrites the file from its checkpoint."
                    ),
                    stacklevel=2,
                )
            else:
                raise UserError(
                    f"{self.metrics_file}: line {n} is not a JSON record: the file is damaged. Restore it from a backup; "
                    f"mrnet-train --resume {self.path} rewrites it from the run's checkpoint."
                )
        return records


class PartialMetricsLine(UserWarning):
    """metrics.jsonl ends in part of a line: left out."""


# --- checkpoints --------------------------------------------------------------------------------


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temp file, then rename: the previous checkpoint survives a crash mid-write.
    Serialised in memory first, so a full disk is an ``OSError`` (ENOSPC) like any other write's."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    write_atomic(path, [buffer.getbuffer()])


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by ``save_checkpoint`` onto the CPU, or raise ``UserError`` naming the file."""
    if not path.exists():
        raise UserError(
            f"{path} is missing: there is no checkpoint to continue from (did the run stop before its first epoch ended?). "
            f"Start a new run: delete {path.parent.parent} or pass another --out."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated or foreign files fail in many ways
        raise UserError(
            f"{path} is corrupt or not an mrnet checkpoint ({type(err).__name__}: {str(err)[:200]}). "
            "Delete the run folder and train again, or restore the file from a backup."
        ) from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path} is not an mrnet training checkpoint (format {state.get('format') if isinstance(state, dict) else None!r}, expected {CHECKPOINT_FORMAT})."
        )
    return state


def load_weights(model: torch.nn.Module, checkpoint: dict, path: Path, cfg: TrainConfig) -> None:
    """A checkpoint's weights into the run's model; ``UserError`` naming both models when they differ."""
    theirs = checkpoint.get(MODEL_NAME)
    options = ", ".join(f"{k}={v}" for k, v in cfg.model_options.items()) or "its preset's options"
    fix = f"Put the checkpoint {path.name} of this run back (or start a new run)."
    if theirs is not None and theirs != cfg.model:
        raise UserError(
            f"{path} holds the weights of a {theirs} model, and this run's config.json trains {cfg.model}: "
            f"the checkpoint comes from another run. {fix}"
        )
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)[:200]
        raise UserError(
            f"{path} does not fit this run's model ({cfg.model}, {options}): {first}. It holds the weights of "
            f"{theirs or 'another model'} or of other options: the checkpoint comes from another run. {fix}"
        ) from err


def rng_state() -> dict:
    """The state of every generator training draws from: Python, NumPy, torch CPU and CUDA."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": _listify(random.getstate()),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": np_state["state"]["key"].tolist(),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; NumPy's legacy seed takes 32 bits (a rank's seed, ``seed * 1_000_003 + rank``, may be more)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _listify(value):
    return [_listify(v) for v in value] if isinstance(value, tuple) else value


def _tuplify(value):
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value
