"""The two tasks a store can hold, and what each one reports.

A store's provenance says its task (``single-label``: one genre per track; ``multi-label``: any number of
tags per track). The task fixes the output layer's reading (softmax or per-tag sigmoid), the loss
(cross-entropy or binary cross-entropy), the headline metrics and the default selection metric; no
flag has to be kept in sync with the store.

>>> HEADLINE["multi-label"], label("pr_auc"), show("accuracy", 0.9166), show("roc_auc", 0.9034)
(('roc_auc', 'pr_auc'), 'PR-AUC', '91.7 %', '0.903')
"""

from __future__ import annotations

SINGLE, MULTI = "single-label", "multi-label"

#: The two numbers a report leads with, per task: the first one also chooses the checkpoint by default.
HEADLINE = {SINGLE: ("accuracy", "macro_f1"), MULTI: ("roc_auc", "pr_auc")}
#: What each task's labels are, for headings.
TASK_NAMES = {SINGLE: "Genres", MULTI: "Tags"}
LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "loss": "loss"}


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def show(metric: str, value: float | None) -> str:
    """Accuracy as a percentage, every other score with three decimals; ``n/a`` for a missing value."""
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} %" if metric == "accuracy" else f"{value:.3f}"


def task_of(report_or_store: dict) -> str:
    """The task of a report (its ``task``) or a run's store record (its provenance); older ones are single-label."""
    if "task" in report_or_store:
        return report_or_store["task"]
    return report_or_store.get("provenance", {}).get("task", SINGLE)
