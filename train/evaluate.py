"""Metrics: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix for genres;
ROC-AUC, PR-AUC and thresholded precision/recall for tags (``tagging.tag_scores``).

``evaluate`` runs a model over the evaluation units of a split (whole tracks, or several crops per
track whose probabilities are averaged; batches of equal length only, see ``loader.length_batches``);
``scores`` turns a confusion matrix into the numbers a report shows; ``mean_std`` aggregates folds.

>>> s = scores(np.array([[2, 0], [1, 1]]))
>>> s["accuracy"], round(s["macro_f1"], 4)
(0.75, 0.7333)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from mrnet.train.tagging import tag_scores


def confusion(labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
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
    multilabel: bool = False,
    threshold: float | None = None,
    bf16: bool = False,
    stop: Callable[[], bool] | None = None,
    gather: Callable[[list], list] | None = None,
    keep: bool = False,
    embed: torch.nn.Module | None = None,
) -> dict:
    """The loss the model trains on, and the task's scores, over ``batches`` of ``(x, y)``.

    ``x`` is ``(B, channels, layers, T, dim)`` (one unit per track) or ``(B, crops, ...)`` (several crops
    per track: their softmax or sigmoid outputs are averaged, and the loss is taken on the average).
    Single-label: class-weighted cross-entropy, accuracy, macro-F1, per-class scores, the confusion
    matrix. Multi-label (``multilabel``): binary cross-entropy per tag (``class_weights`` then weighs
    each tag's positives), ROC-AUC and PR-AUC, and precision/recall at ``threshold`` (None: chosen here,
    as on the validation split). The model is put in eval mode and left there. ``gather``: the
    per-batch results of every process in one-process order (``distributed.gather_batches``, each
    process scoring its share of the batches), so the metrics are those of one process.

    ``keep``: the result also holds each unit's ``truth`` and ``probabilities`` (numpy, in the order of
    the batches: ``predictions.eval_order``). ``embed``: a module of ``model`` whose input is the
    pooled embedding (``predictions.penultimate``); its input, averaged over a unit's crops, is kept
    as ``embeddings``.
    """
    model.eval()
    parts = []  # per batch: (truth, probabilities, loss sum, weight sum, embeddings)
    weights = class_weights.to(device) if class_weights is not None else None
    seen: list[torch.Tensor] = []
    hook = (
        embed.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().float()))
        if embed is not None
        else None
    )
    try:
        for x, y in batches:
            if stop is not None and stop():
                raise Stopped
            parts.append(_batch(model, x, y, device, weights, multilabel, bf16, seen))
    finally:
        if hook is not None:
            hook.remove()
    truth, probs, embeddings, loss_sum, weight_sum = [], [], [], 0.0, 0.0
    for y, p, batch_loss, batch_weight, e in gather(parts) if gather is not None else parts:
        truth.append(y)
        probs.append(p)
        embeddings.append(e)
        loss_sum += batch_loss
        weight_sum += batch_weight
    loss = loss_sum / weight_sum if weight_sum else math.nan
    kept = {}
    if keep:
        kept = {
            "truth": torch.cat(truth).numpy() if truth else np.zeros(0, dtype=np.int64),
            "probabilities": torch.cat(probs).numpy() if probs else np.zeros((0, num_classes), dtype=np.float32),
        }
        if embed is not None:
            kept["embeddings"] = torch.cat(embeddings).numpy() if embeddings else np.zeros((0, 0), dtype=np.float32)
    if multilabel:
        if not truth:
            return {
                "loss": loss,
                "roc_auc": math.nan,
                "pr_auc": math.nan,
                "threshold": threshold or 0.5,
                "macro_f1": 0.0,
                **kept,
            }
        return {
            "loss": loss,
            **tag_scores(torch.cat(truth).numpy(), torch.cat(probs).numpy(), threshold=threshold),
            **kept,
        }
    preds: np.ndarray | list[int] = torch.cat(probs).argmax(1).numpy() if probs else []
    conf = confusion(torch.cat(truth).numpy() if truth else [], preds, num_classes)
    return {"loss": loss, **scores(conf), "confusion": conf.tolist(), **kept}


def _batch(model, x, y, device, weights, multilabel: bool, bf16: bool, seen: list) -> tuple:
    """One batch's (truth, probabilities, loss sum, weight sum, embeddings or None) on the CPU."""
    x, y = x.to(device, non_blocking=True).float(), y.to(device)
    crops = x.shape[1] if x.dim() == 6 else 1
    seen.clear()
    with autocast(device, bf16):
        logits = model(x.flatten(0, 1) if x.dim() == 6 else x)
    logits = logits.float().view(len(y), crops, -1)
    part: tuple[float, float]  # (loss sum, weight sum)
    if multilabel:
        p = torch.sigmoid(logits).mean(1)
        loss = (
            F.binary_cross_entropy(p, y.float(), reduction="none")
            if crops > 1
            else F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), reduction="none")
        )
        if weights is not None:  # pos_weight: a positive's term counts w times
            loss = loss * torch.where(y > 0, weights, torch.ones_like(weights))
        part = (float(loss.mean(1).sum()), len(y))
    else:
        p = torch.softmax(logits, -1).mean(1)
        log_p = torch.log(p.clamp_min(1e-12)) if crops > 1 else F.log_softmax(logits[:, 0], -1)
        part = (
            float(F.nll_loss(log_p, y, weight=weights, reduction="sum")),
            float(weights[y].sum()) if weights is not None else len(y),
        )
    embedded = seen[-1].flatten(1).view(len(y), crops, -1).mean(1).cpu() if seen else None
    return (y.cpu(), p.cpu(), *part, embedded)


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
