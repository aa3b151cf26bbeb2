"""What a run's checkpoints hold: the training state (``TrainState``) and the names of their keys.

``checkpoints/last.pt`` is what ``--resume`` continues from: the model, optimizer and scheduler
states, every rank's RNG state and the :class:`TrainState` (where in which epoch the run is, the epoch's
running sums, the best evaluation so far, the metrics history, the patience counter, an early stop).
``checkpoints/best.pt`` is the model of the validation-selected epoch, with that epoch and its
validation metrics. Checkpoints written before the running sums had names (a list ``sums`` of loss,
correct, count) still load.

>>> state = TrainState(epoch=2, step=5, loss_sum=1.5, correct=3, seen=8)
>>> TrainState.from_checkpoint(state.to_checkpoint()) == state
True
>>> TrainState.from_checkpoint({"epoch": 1, "step": 2, "sums": [0.5, 1, 4]}).seen   # an older last.pt
4
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- keys of checkpoints/last.pt (and best.pt: MODEL, EPOCH, VALID) ---------------------------------
MODEL = "model"  # the model's state_dict
MODEL_NAME = (
    "model_name"  # its --model (from this key's introduction on): another model's checkpoint is refused by name
)
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
RNG = "rng"  # rank 0's RNG states (runs.rng_state)
RNG_RANKS = "rng_ranks"  # every rank's, in a process group
EPOCH = "epoch"  # last.pt: epochs finished; best.pt: the selected epoch (1-based)
STEP = "step"  # batches finished in the epoch under way (0: between epochs)
RUNNING = "running"  # the epoch's running sums so far: {"loss_sum", "correct", "seen"}
BEST = "best"  # the best evaluation so far: {"epoch", "metric", "loss"} (the probe adds "C")
HISTORY = "history"  # every epoch's metrics.jsonl record
PATIENCE = "patience"  # selection.Patience's state
STOPPED = "stopped"  # the epoch --patience stopped the run after, or None
VALID = "valid"  # best.pt: the selected epoch's validation metrics
C = "C"  # the linear probe's chosen regularisation strength
LEGACY_SUMS = "sums"  # before RUNNING: [loss_sum, correct, seen] by position


@dataclass
class TrainState:
    """Where a run is and what it has seen: all that training updates besides the model, the
    optimizer, the scheduler and the RNGs."""

    epoch: int = 0  # epochs finished
    step: int = 0  # batches finished in the epoch under way
    # the epoch under way so far, summed over its batches (and the ranks): the loss of each batch
    # times its size, the correct predictions (single-label), the examples
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    best: dict | None = None
    history: list[dict] = field(default_factory=list)
    patience: dict | None = None
    stopped: int | None = None

    def count(self, loss_sum: float, correct: int, seen: int) -> None:
        """One more batch of the epoch under way."""
        self.step += 1
        self.loss_sum += loss_sum
        self.correct += correct
        self.seen += seen

    def end_epoch(self, record: dict) -> None:
        """The epoch under way is finished with metrics ``record``: the next one starts from zero."""
        self.epoch, self.step = self.epoch + 1, 0
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0
        self.history.append(record)

    @property
    def running(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum, "correct": self.correct, "seen": self.seen}

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            EPOCH: self.epoch,
            STEP: self.step,
            RUNNING: self.running,
            BEST: self.best,
            HISTORY: self.history,
            PATIENCE: self.patience,
            STOPPED: self.stopped,
        }

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> TrainState:
        running = ck.get(RUNNING)
        if running is None:  # a checkpoint from before the sums had names
            loss_sum, correct, seen = ck.get(LEGACY_SUMS) or (0.0, 0, 0)
            running = {"loss_sum": loss_sum, "correct": correct, "seen": seen}
        return cls(
            epoch=ck.get(EPOCH, 0),
            step=ck.get(STEP, 0),
            **running,
            best=ck.get(BEST),
            history=list(ck.get(HISTORY) or []),
            patience=ck.get(PATIENCE),
            stopped=ck.get(STOPPED),
        )
