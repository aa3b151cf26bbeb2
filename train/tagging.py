"""Multi-label (tagging) metrics, computed with scikit-learn as the MagnaTagATune literature does.

``tag_scores`` takes clip-level tag probabilities and the multi-hot truth and returns what a tagging
report shows: macro ROC-AUC (``roc_auc_score(average="macro")``), macro PR-AUC (the average precision,
``average_precision_score(average="macro")``; Won et al.'s ``eval.py`` and the MsE-CNN paper call it
PR-AUC), both per tag, and precision, recall and F1 at one decision threshold. The threshold is chosen
on the validation split (the one that maximises micro-F1 there) and then applied unchanged to test.

A tag with no positive (or no negative) clip in the evaluated split has no ROC-AUC; it is left out of
the macro averages and its per-tag value is NaN. scikit-learn would raise on such a column instead.

>>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
>>> p = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.1, 0.5]])
>>> s = tag_scores(y, p, threshold=0.5)
>>> s["roc_auc"], round(s["pr_auc"], 4), s["roc_auc_per_tag"]
(0.875, 0.9167, [1.0, 0.75])
>>> s["precision"], s["recall"]
(0.75, 0.75)
"""

from __future__ import annotations

import math

import numpy as np

THRESHOLDS = np.round(np.arange(0.02, 1.0, 0.02), 2)  # the grid the validation threshold is chosen from


def scorable(y: np.ndarray) -> np.ndarray:
    """Boolean per tag: it has both positive and negative clips, so ROC-AUC exists."""
    positives = y.sum(axis=0)
    return (positives > 0) & (positives < y.shape[0])


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The grid threshold with the best micro-F1 on ``(y, p)`` (the validation split); ties go to the lower one.

    >>> choose_threshold(np.array([[1], [0], [1]]), np.array([[0.7], [0.3], [0.41]]))
    0.32
    """
    from sklearn.metrics import precision_recall_fscore_support  # imported when scored, not when training starts

    best, best_f1 = 0.5, -1.0
    for t in THRESHOLDS:
        f1 = precision_recall_fscore_support(y, p >= t, average="micro", zero_division=0)[2]
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(t), f1
    return best


def tag_scores(y: np.ndarray, p: np.ndarray, *, threshold: float | None = None) -> dict:
    """Macro and per-tag ROC-AUC and PR-AUC, and micro precision/recall/F1 (with macro-F1) at ``threshold``
    (None: choose it on these clips, which is what the validation split does)."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    ok = scorable(y)
    roc = np.full(y.shape[1], math.nan)
    ap = np.full(y.shape[1], math.nan)
    if ok.any():
        roc[ok] = roc_auc_score(y[:, ok], p[:, ok], average=None)
        ap[ok] = average_precision_score(y[:, ok], p[:, ok], average=None)
    if threshold is None:
        threshold = choose_threshold(y, p)
    predicted = p >= threshold
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, average="micro", zero_division=0)
    macro_f1 = precision_recall_fscore_support(y, predicted, average="macro", zero_division=0)[2]
    return {
        "roc_auc": float(np.mean(roc[ok])) if ok.any() else math.nan,
        "pr_auc": float(np.mean(ap[ok])) if ok.any() else math.nan,
        "roc_auc_per_tag": [None if math.isnan(v) else float(v) for v in roc],
        "pr_auc_per_tag": [None if math.isnan(v) else float(v) for v in ap],
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "macro_f1": float(macro_f1),
        "positives": y.sum(axis=0).astype(int).tolist(),
    }
