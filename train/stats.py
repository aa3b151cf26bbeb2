"""Uncertainty of test numbers: bootstrap intervals over test tracks, and paired tests between two systems.

``interval`` resamples the test tracks with replacement (``scipy.stats.bootstrap``, percentile
method, :data:`RESAMPLES` resamples, seeded by :data:`SEED`, so a report is the same every time)
and recomputes the metric on each resample exactly as the report computes it (``evaluate.scores``
for genres, ``tagging.tag_scores`` for tags): the 95 % interval of the number a report shows.

``paired`` compares two systems scored on the same tracks: accuracy by the exact McNemar test
(``scipy.stats.binomtest`` on the tracks exactly one of them gets right), every other metric by a
paired bootstrap (both systems' predictions of the same resampled tracks; the p-value is twice the
share of resampled differences on the far side of zero, the difference's interval beside it).

>>> y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
>>> p = np.eye(2)[[0, 1, 1, 0, 0, 0, 1, 1]]
>>> low, high = interval(y, p, "accuracy")
>>> 0.0 <= low < 7 / 8 < high <= 1.0
True
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from mrnet.train.evaluate import confusion, scores
from mrnet.train.tagging import scorable, tag_scores


def tag_areas(name: str, truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-tag ROC-AUC (``roc_auc``) or average precision (``pr_auc``) of tags that each have positive and
    negative clips: scikit-learn's ``roc_auc_score`` and ``average_precision_score`` (``average=None``),
    equal to them (tests/train/test_results.py), computed for every tag at once from one sort per
    resample. A bootstrap recomputes them a thousand times per system: scikit-learn's per-tag loop takes
    0.2 s per resample on 5,000 clips x 50 tags, this a few milliseconds.
    ROC-AUC is the Mann-Whitney statistic of each tag's scores (``scipy.stats.rankdata``, ties averaged);
    average precision sums, over the distinct scores from the highest, the recall gained times the
    precision there, as scikit-learn does (tied scores are one threshold)."""
    truth, scores = np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    positives = truth.sum(axis=0)
    if name == "roc_auc":
        from scipy.stats import rankdata  # SciPy's statistics load when a run is scored, not when it starts

        ranks = rankdata(scores, axis=0)
        negatives = len(truth) - positives
        return ((ranks * truth).sum(axis=0) - positives * (positives + 1) / 2) / (positives * negatives)
    order = np.argsort(-scores, axis=0, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=0)
    hits = np.cumsum(np.take_along_axis(truth, order, axis=0), axis=0)
    ends = np.ones_like(ranked, dtype=bool)  # the last clip of each run of tied scores: a threshold
    ends[:-1] = ranked[:-1] != ranked[1:]
    at_ends = np.where(ends, hits, 0.0)
    before = np.maximum.accumulate(
        np.vstack([np.zeros((1, truth.shape[1])), at_ends[:-1]]), axis=0
    )  # hits at the previous threshold
    precision = hits / np.arange(1, len(truth) + 1)[:, None]
    return (np.where(ends, (hits - before) * precision, 0.0)).sum(axis=0) / positives


TAG_AREAS = ("roc_auc", "pr_auc")

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def metric(name: str, truth: np.ndarray, probabilities: np.ndarray, *, threshold: float | None = None) -> float:
    """One headline metric of tracks ``truth`` (label indices, or multi-hot rows for tags) and their probabilities."""
    truth, probabilities = np.asarray(truth), np.asarray(probabilities)
    if (
        truth.ndim == 2 and name in TAG_AREAS
    ):  # the macro mean over the tags this resample can score, as tag_scores takes it
        ok = scorable(truth)
        return float(tag_areas(name, truth[:, ok], probabilities[:, ok]).mean()) if ok.any() else math.nan
    if truth.ndim == 2:
        return float(tag_scores(truth, probabilities, threshold=0.5 if threshold is None else threshold)[name])
    return float(scores(confusion(truth, probabilities.argmax(1), probabilities.shape[1]))[name])


def _resample(statistic, n: int, *, seed: int):
    """``scipy.stats.bootstrap`` over track indices 0..n-1: ``statistic(indices)`` per resample."""
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample (every track right) is a fine resample
        return bootstrap(
            (np.arange(n),),
            statistic,
            n_resamples=RESAMPLES,
            confidence_level=LEVEL,
            method="percentile",
            vectorized=False,
            rng=np.random.default_rng(seed),
        )


def interval(
    truth: np.ndarray, probabilities: np.ndarray, name: str, *, threshold: float | None = None, seed: int = SEED
) -> tuple[float, float]:
    """The 95 % bootstrap interval of metric ``name`` over the tracks; (nan, nan) for fewer than two tracks."""
    return mean_interval(truth, [probabilities], name, threshold=threshold, seed=seed)


def _bounds(result) -> tuple[float, float]:
    """The percentile interval of a bootstrap result; resamples where the metric does not exist (a tag
    resample without a tag that has both positive and negative clips) are left out; (nan, nan) if all are."""
    draws = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    if not np.isnan(draws).any():
        low, high = result.confidence_interval
        return float(low), float(high)
    draws = draws[~np.isnan(draws)]
    if not draws.size:
        return math.nan, math.nan
    tail = 100 * (1 - LEVEL) / 2
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def mean_interval(
    truth: np.ndarray, probabilities: list[np.ndarray], name: str, *, threshold: float | None = None, seed: int = SEED
) -> tuple[float, float]:
    """The 95 % bootstrap interval of metric ``name`` averaged over several runs' ``probabilities`` of the
    same tracks (the seeds of one configuration): each resample draws tracks once and averages the runs'
    metric on them, so a track's copies from the runs are drawn together and the interval is not narrowed
    by counting a track once per run; (nan, nan) for fewer than two tracks. :func:`interval` is its one-run case."""
    truth = np.asarray(truth)
    if len(truth) < 2:
        return math.nan, math.nan
    probs = [np.asarray(p) for p in probabilities]
    result = _resample(
        lambda idx: float(np.mean([metric(name, truth[idx], p[idx], threshold=threshold) for p in probs])),
        len(truth),
        seed=seed,
    )
    return _bounds(result)


def intervals(
    truth: np.ndarray, probabilities: np.ndarray, names: tuple[str, ...], *, threshold: float | None = None
) -> dict:
    """``{metric: [low, high]}`` for each of ``names``: what report.json stores under ``test.interval``."""
    return {name: list(interval(truth, probabilities, name, threshold=threshold)) for name in names}


def paired(
    truth: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    name: str,
    *,
    threshold: float | None = None,
    seed: int = SEED,
) -> dict:
    """Compare two systems' probabilities ``first`` and ``second`` of the same tracks on metric ``name``.

    Returns the difference (first - second), the test used, its p-value and, for the bootstrap, the 95 %
    interval of the difference. Accuracy: exact McNemar on the discordant tracks.
    """
    truth, first, second = np.asarray(truth), np.asarray(first), np.asarray(second)
    delta = metric(name, truth, first, threshold=threshold) - metric(name, truth, second, threshold=threshold)
    if name == "accuracy" and truth.ndim == 1:
        right_a, right_b = first.argmax(1) == truth, second.argmax(1) == truth
        only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
        from scipy.stats import binomtest

        p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        return {
            "metric": name,
            "difference": delta,
            "test": "McNemar (exact)",
            "p": float(p),
            "only_first": only_a,
            "only_second": only_b,
        }
    if len(truth) < 2:
        return {
            "metric": name,
            "difference": delta,
            "test": "paired bootstrap",
            "p": math.nan,
            "interval": [math.nan, math.nan],
        }

    def diff(idx):
        return metric(name, truth[idx], first[idx], threshold=threshold) - metric(
            name, truth[idx], second[idx], threshold=threshold
        )

    result = _resample(diff, len(truth), seed=seed)
    draws = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    draws = draws[~np.isnan(draws)]
    p = min(1.0, 2 * min(float(np.mean(draws <= 0)), float(np.mean(draws >= 0)))) if draws.size else math.nan
    return {"metric": name, "difference": delta, "test": "paired bootstrap", "p": p, "interval": list(_bounds(result))}


__all__ = ["LEVEL", "RESAMPLES", "SEED", "interval", "intervals", "metric", "paired", "tag_areas"]
