"""Metrics: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix, on whole tracks.

``evaluate`` runs a model over whole tracks (batches of equal length only, see ``data.length_batches``);
``scores`` turns a confusion matrix into the numbers a report shows; ``mean_std`` aggregates folds.

>>> s = scores(np.array([[2, 0], [1, 1]]))
>>> s["accuracy"], round(s["macro_f1"], 4)
(0.75, 0.7333)
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def confusion(labels: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    """``(classes, classes)`` counts: row = true class, column = predicted class.

    >>> confusion([0, 1, 1], [0, 0, 1], 2).tolist()
    [[1, 0], [1, 1]]
    """
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return out


def scores(conf: np.ndarray) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support from a confusion matrix.

    Macro-F1 averages over the classes that occur in the labels or the predictions (scikit-learn's
    ``f1_score(average="macro")``); a class never predicted has precision 0.
    """
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    support, predicted = conf.sum(axis=1), conf.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    total = conf.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.astype(int).tolist(),
    }


class Stopped(Exception):
    """Raised from inside ``evaluate`` when its ``stop`` check says so (Ctrl-C)."""


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int,
    device: torch.device,
    class_weights: torch.Tensor | None = None,
    bf16: bool = False,
    stop: Callable[[], bool] | None = None,
) -> dict:
    """Loss (class-weighted, as in training), accuracy, macro-F1, per-class scores and confusion matrix.

    ``batches`` yields ``(x, y)`` of whole tracks; the model is put in eval mode and left there.
    """
    model.eval()
    labels, preds, loss_sum, weight_sum = [], [], 0.0, 0.0
    weights = class_weights.to(device) if class_weights is not None else None
    for x, y in batches:
        if stop is not None and stop():
            raise Stopped
        x, y = x.to(device, non_blocking=True).float(), y.to(device)
        with autocast(device, bf16):
            logits = model(x)
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, y, weight=weights, reduction="sum"))
        weight_sum += float(weights[y].sum()) if weights is not None else len(y)
        labels += y.tolist()
        preds += logits.argmax(dim=1).tolist()
    conf = confusion(labels, preds, num_classes)
    return {"loss": loss_sum / weight_sum if weight_sum else math.nan, **scores(conf), "confusion": conf.tolist()}


def autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast on CUDA when asked; nothing on CPU."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value).

    >>> mean_std([0.9, 0.95, 1.0])
    (0.95, 0.05)
    """
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return round(float(arr.mean()), 12), round(std, 12)
