"""Training curves as TensorBoard event files in the run folder, the convention researchers watch live.

``tensorboard --logdir runs/`` shows each run's training loss per batch, and per epoch its losses,
accuracies, macro-F1 (or ROC-AUC and PR-AUC for tags) and learning rate, as it trains. The files come
from tensorboardX (the optional extra ``mrnet[tensorboard]``, which ``requirements.lock`` installs);
without it a run writes none, and says so once. TensorBoard itself is never needed to train.

A resumed run starts its writer at the step it resumes from with ``purge_step``, so TensorBoard drops
the points an interrupted writer had logged past the checkpoint instead of drawing them twice.
"""

from __future__ import annotations

from pathlib import Path


class EventLog:
    """Scalars of one run under ``folder`` (``<run>/tensorboard``); every method is a no-op without
    tensorboardX, or without a folder (the ranks but rank 0 of a run on several processes)."""

    def __init__(self, folder: Path | None, *, steps_per_epoch: int, start_step: int = 0):
        self.steps_per_epoch = steps_per_epoch
        if folder is None:
            self.writer, self.missing = None, None
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            self.writer, self.missing = (
                None,
                "tensorboardX is not installed (pip install 'mrnet[tensorboard]'): no TensorBoard curves",
            )
            return
        self.missing = None
        self.writer = SummaryWriter(str(folder), purge_step=start_step or None, flush_secs=30)

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
            if (
                key not in ("epoch", "best", "seconds")
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            ):
                split, _, metric = key.partition("_")
                self.writer.add_scalar(f"{metric}/{split}" if metric else key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
