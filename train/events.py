"""TensorBoard event files in each run folder (``<run>/tensorboard``): ``tensorboard --logdir runs`` watches
runs as they train and compares them when they have finished.

What a run logs, with ``torch.utils.tensorboard`` (TensorBoard is a dependency of mrnet):

- **curves** (Scalars tab), as it trains: per batch the training loss (``batch/train_loss``), per epoch
  its losses, accuracies, macro-F1 (or ROC-AUC and PR-AUC for tags) and learning rate as ``<metric>/<split>``,
  at the global step (batches) the epoch ends. The linear probe (``--model linear``) has no epochs: step
  *i* is the *i*-th value of its C grid, and ``C`` is a curve of its own.
- **the result** (``log_result``), when the final report is written: the run's resolved configuration as
  hparams (HParams tab: one session per run folder), its final metrics as ``final/<split>_<metric>``
  scalars (the validation-selected model's test and validation numbers: the HParams tab's metric columns),
  the configuration as text, and the figures the run writes as PNG (``figures/confusion`` or
  ``figures/tags``, ``figures/curves``, ``figures/weights``), the PNG files' own bytes.
- A ``--folds all`` run has one event folder per fold (``fold-<k>/tensorboard``) and one for the folds'
  mean (``tensorboard`` of the top folder: ``final/...`` is the mean over folds, ``final/..._std`` the
  spread); a ``--seeds`` folder likewise, per seed and for the mean.

A resumed run starts its writer with ``purge_step`` just past the step it resumes from, so TensorBoard drops
the points an interrupted writer had logged past the checkpoint instead of drawing them twice (and keeps
the checkpoint's own step, which the resumed run does not log again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: the event folder of a run folder
FOLDER = "tensorboard"
#: the tag of the configuration as text
CONFIG_TAG = "config"


def folder_of(run: Path) -> Path:
    """The event folder of run folder ``run``."""
    return Path(run) / FOLDER


def _writer(folder: Path, purge_step: int | None = None):
    """A ``SummaryWriter`` on ``folder``, or a note saying why there is none."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return (
            None,
            "tensorboard is not installed (it is a dependency of mrnet: pip install tensorboard): no event files",
        )
    return SummaryWriter(str(folder), purge_step=purge_step, flush_secs=30), None


class EventLog:
    """Curves of one run under ``folder`` (``<run>/tensorboard``); every method is a no-op without a folder
    (the ranks but rank 0 of a run on several processes) or without TensorBoard (``missing`` says so).
    ``start_step``: the last step already done (a resumed run); the points an earlier writer logged past it
    are dropped (``purge_step``: from that step on, instead)."""

    def __init__(
        self, folder: Path | None, *, steps_per_epoch: int, start_step: int = 0, purge_step: int | None = None
    ):
        self.steps_per_epoch = steps_per_epoch
        self.writer, self.missing = None, None
        if folder is not None:
            purge = purge_step if purge_step is not None else start_step + 1 if start_step else None
            self.writer, self.missing = _writer(folder, purge)

    def batch(self, epoch: int, step: int, loss: float) -> None:
        """The training loss of batch ``step`` (1-based) of ``epoch`` (0-based)."""
        if self.writer is not None:
            self.writer.add_scalar("batch/train_loss", loss, epoch * self.steps_per_epoch + step)

    def epoch(self, record: dict) -> None:
        """Every number of an epoch's metrics record, at the step the epoch ends."""
        if self.writer is None:
            return
        step = record["epoch"] * self.steps_per_epoch
        for key, value in record.items():
            if key not in ("epoch", "best", "seconds") and _number(value):
                split, _, metric = key.partition("_")
                self.writer.add_scalar(f"{metric}/{split}" if metric else key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def hparams(config: dict) -> dict[str, bool | float | str]:
    """A run's configuration (``config.json``) as TensorBoard hparams: numbers, booleans and text as they
    are, a list as its items joined by commas, a nested option as ``outer.inner``; unset (None) options
    are left out, so an option keeps one type in every run.

    >>> hparams({"lr": 0.001, "augment": True, "fold": None, "layers": [0, 3], "model_options": {"width": 32}})
    {'lr': 0.001, 'augment': True, 'layers': '0,3', 'model_options.width': 32}
    """
    out: dict[str, bool | float | str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in hparams(value).items()})
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(":".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in value)
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


def final_metrics(report: dict) -> dict[str, float]:
    """The numbers of a finished run's report that the HParams tab compares, as ``final/...`` scalar tags:
    its test and validation metrics (of the validation-selected model), the epoch (or the probe's C) chosen;
    of a ``--folds all`` or ``--seeds`` report, the mean of each number and its spread (``_std``).

    >>> final_metrics({"test": {"accuracy": 0.8, "per_class": []}, "valid": {"accuracy": 0.9}, "selection": {"epoch": 3}})
    {'final/test_accuracy': 0.8, 'final/valid_accuracy': 0.9, 'final/epoch': 3}
    >>> final_metrics({"mean": {"test_accuracy": 0.8}, "std": {"test_accuracy": 0.1}})
    {'final/test_accuracy': 0.8, 'final/test_accuracy_std': 0.1}
    """
    out: dict[str, float] = {}
    if "mean" in report:  # folds or seeds
        for key, value in report["mean"].items():
            out[f"final/{key}"] = value
            if report.get("std", {}).get(key) is not None:
                out[f"final/{key}_std"] = report["std"][key]
        return out
    for split in ("test", "valid"):
        out.update({f"final/{split}_{k}": v for k, v in report.get(split, {}).items() if _number(v)})
    selection = report.get("selection", {})
    for key in ("epoch", "C"):
        if _number(selection.get(key)):
            out[f"final/{key}"] = selection[key]
    return out


def log_result(run: Path, report: dict, *, step: int, figures: Iterable[Path] | None = None) -> str | None:
    """A finished run's result into its event folder at global step ``step``: hparams (its configuration),
    final metrics, the configuration as text and the ``figures`` (PNG files; None: every PNG in the run's
    plots/) as images. Returns a note when TensorBoard is missing (None otherwise)."""
    writer, missing = _writer(folder_of(run))
    if writer is None:
        return missing
    from tensorboard.plugins.hparams import summary_v2

    try:
        config = report.get("config", {})
        writer.file_writer.add_summary(summary_v2.hparams_pb(hparams(config)), step)
        for tag, value in final_metrics(report).items():
            writer.add_scalar(tag, value, step)
        writer.add_text(CONFIG_TAG, "```\n" + json.dumps(config, indent=2) + "\n```", step)
        for png in sorted(Path(run).glob("plots/*.png")) if figures is None else figures:
            writer.file_writer.add_summary(_image(f"figures/{Path(png).stem}", Path(png)), step)
    finally:
        writer.close()
    return None


def _image(tag: str, png: Path):
    """An image summary holding ``png``'s bytes as they are (TensorBoard shows PNG as stored)."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    data = png.read_bytes()
    with Image.open(png) as picture:
        width, height = picture.size
        channels = len(picture.getbands())
    image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=data)
    return Summary(value=[Summary.Value(tag=tag, image=image)])
