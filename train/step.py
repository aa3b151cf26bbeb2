"""One batch at a time: a training step (``train_step``), the evaluation batches shown as they are
scored (``Shown``), and what a run says when its loss stops being a number (``diverged``).
"""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F

from mrnet.core.errors import UserError
from mrnet.train import distributed
from mrnet.train.augment import Augment, PartAugment
from mrnet.train.config import TrainConfig
from mrnet.train.evaluate import autocast


def train_step(
    model,
    optimizer,
    weights,
    x,
    y,
    device,
    bf16: bool,
    augment: Augment | PartAugment | None = None,
    plan: dict | None = None,
    multilabel: bool = False,
    share: distributed.Share | None = None,
) -> tuple[float, int]:
    """One optimisation step on a batch: (loss, correct predictions; 0 for tags).

    Single-label: class-weighted cross-entropy. Multi-label: binary cross-entropy per tag (``weights``,
    if any, weigh each tag's positives). A model with ``training_logits`` (MusicNeXt's L-softmax) gives
    its training logits from the labels. The batch arrives as stored (float16 by default) and becomes
    float32 on ``device``, where the augmentation drawn by the loader (``plan``) is applied: on a GPU
    beside the model, instead of ~30 ms of CPU per crop in the loader (docs/performance.md, T1).
    In a process group, ``model`` is the DDP-wrapped model, the batch is this rank's share of the
    global batch and ``share`` says how it enters the loss; the loss returned is the share's part of
    the global batch's loss (the ranks' parts add up to it).
    """
    x, y = x.to(device, non_blocking=True).float(), y.to(device, non_blocking=True)
    if augment is not None and plan is not None:
        x = augment.apply(x, plan)
    with autocast(device, bf16):
        logits = distributed.training_logits(model, x, y)
    reduction = "mean" if share is None else "sum"
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=weights, reduction=reduction)
    else:
        loss = F.cross_entropy(logits.float(), y, weight=weights, reduction=reduction)
    if share is not None:
        loss = loss / share.total
    optimizer.zero_grad(set_to_none=True)
    (loss if share is None else loss * share.world).backward()  # DDP averages the ranks' gradients
    optimizer.step()
    return loss.item(), 0 if multilabel else int((logits.argmax(1) == y).sum())


class Shown:
    """An evaluation loader whose batches are reported to the reporter as they are scored (0 at the start)."""

    def __init__(self, loader, part: str, reporter):
        self.loader, self.part, self.reporter = loader, part, reporter
        self.dataset = getattr(loader, "dataset", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        total = len(self.loader)
        self.reporter.evaluation(part=self.part, done=0, total=total)
        for done, batch in enumerate(self.loader, 1):
            yield batch
            self.reporter.evaluation(part=self.part, done=done, total=total)


def diverged(cfg: TrainConfig, run: Path, epoch: int, step: int, loss: float) -> UserError:
    """The run stops at a non-finite loss: its weights are spoiled, so nothing of this epoch is saved,
    and what was written before (metrics.jsonl, the last end-of-epoch checkpoint, best.pt) stays."""
    rates = (
        f"--lr {cfg.lr:g}"
        + (f", --lr-min {cfg.lr_min:g}" if cfg.schedule == "cosine" else "")
        + (f", --stage {' '.join(f'{e}:{o}:{lr:g}' for e, o, lr in cfg.stages)}" if cfg.stages else "")
    )
    kept = f"epochs 1-{epoch} and their checkpoint are kept in {run}" if epoch else f"nothing was checkpointed in {run}"
    return UserError(
        f"training diverged: the loss of batch {step} of epoch {epoch + 1} is {loss} (not a finite number); {kept}. "
        f"The usual cause is a learning rate too high ({rates}): start a new run with a lower --lr "
        f"(resuming would diverge again). Features that are not finite would do it too: mrnet-store verify {cfg.store}"
    )


__all__ = ["Shown", "diverged", "train_step"]
