"""Which epoch's weights a run keeps, and when it stops early: both decided on the validation split only.

``improves`` says whether an evaluated epoch becomes the run's checkpoint (``--select-metric``): a
higher score (ties go to the lower validation loss), a lower loss for ``loss``, and every evaluated
epoch for ``last``. ``Patience`` stops a run once the watched value (the selection metric; validation
loss for ``last``) has not improved by more than ``--min-delta`` for ``--patience`` evaluations, as
the NNET recipe's early stopping does.

>>> improves({"valid_loss": 0.5}, {"metric": 0.6, "loss": 0.6}, "loss"), improves({"valid_accuracy": 0.8, "valid_loss": 1.0}, {"metric": 0.8, "loss": 0.9}, "accuracy")
(True, False)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


def improves(record: dict, best: dict | None, metric: str) -> bool:
    """Does this evaluated epoch's ``record`` replace the checkpoint ``best`` (``{"metric", "loss"}``)?"""
    if best is None or metric == "last":
        return True
    value = record[f"valid_{metric}"]
    if metric == "loss":
        return value < best["metric"]
    return value > best["metric"] or (value == best["metric"] and record["valid_loss"] < best["loss"])


def watched(metric: str) -> str:
    """The validation value patience watches for a selection metric."""
    return "loss" if metric == "last" else metric


@dataclass
class Patience:
    """Evaluations without an improvement of more than ``min_delta`` in the watched value.

    >>> p = Patience(metric="loss", patience=2, min_delta=0.01)
    >>> [p.update({"valid_loss": v}) for v in (1.0, 0.995, 0.992, 0.97)]   # 0.995 and 0.992 are within 0.01 of 1.0
    [False, False, True, False]
    """

    metric: str
    patience: int
    min_delta: float = 0.0
    best: float | None = None
    stale: int = 0

    def update(self, record: dict) -> bool:
        """Count this evaluation; True when the run should stop now."""
        value = record[f"valid_{watched(self.metric)}"]
        sign = -1.0 if watched(self.metric) == "loss" else 1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return 0 < self.patience <= self.stale

    def state(self) -> dict:
        return asdict(self)
