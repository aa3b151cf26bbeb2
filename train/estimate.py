"""How long a recipe takes on a machine without a GPU, said while its first batches run.

A recipe written for a GPU (MRNet's ``paper``: 1000 epochs; ``fcn5-paper``: 200) can take days on a
CPU. The estimate is ``epochs to go x batches per epoch x seconds per batch``, the seconds per batch
measured on the first batches of the run (the very first one, which pays for allocations and the
first reads, is left out); evaluation is not counted, so the real time is longer. Over an hour, the
run says so, with the estimate and the CPU preset to use instead, and goes on (Ctrl-C stops it and
keeps a checkpoint).

>>> too_long(2.0, steps=16, epochs=1000, model="mrnet")[:62]
'this recipe takes about 8.9 h on this CPU (1000 epochs x 16 ba'
>>> too_long(0.01, steps=16, epochs=40, model="mrnet") is None
True
"""

from __future__ import annotations

import time

#: an estimate over this many seconds is said
LIMIT_SECONDS = 3600
#: batches timed for the estimate, after the first
TIMED = 3


def too_long(seconds_per_step: float, *, steps: int, epochs: int, model: str) -> str | None:
    """The note for a recipe of ``epochs`` epochs of ``steps`` batches at ``seconds_per_step`` each, or
    None when it fits in ``LIMIT_SECONDS``."""
    total = seconds_per_step * steps * epochs
    if total <= LIMIT_SECONDS:
        return None
    instead = (
        "--preset tiny (minutes) or --preset small"
        if model == "mrnet"
        else f"--preset small --model {model}, or fewer --epochs"
    )
    return (
        f"this recipe takes about {total / 3600:.1f} h on this CPU ({epochs} epochs x {steps} batches x {seconds_per_step:.2f} s "
        f"a batch, measured on its first batches; evaluation not counted). For a CPU run use {instead} "
        f"(docs/training.md); Ctrl-C stops this one and keeps a checkpoint"
    )


class StepTimer:
    """Times batches 2 to ``TIMED + 1`` of a fresh run on a CPU and gives ``too_long``'s note once."""

    def __init__(self, *, steps: int, epochs: int, model: str):
        self.steps, self.epochs, self.model = steps, epochs, model
        self.began: float | None = None

    def tick(self, step: int) -> str | None:
        """Call after batch ``step`` (1-based) of the first epoch; returns the note when it is due."""
        if step == 1:
            self.began = time.perf_counter()
        elif self.began is not None and (step == TIMED + 1 or step == self.steps):  # a short epoch: its batches
            per_step = (time.perf_counter() - self.began) / (step - 1)
            self.began = None
            return too_long(per_step, steps=self.steps, epochs=self.epochs, model=self.model)
        return None
