"""Metrics against values worked out by hand, and k-fold aggregation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrnet.train.evaluate import confusion, evaluate, mean_std, scores
from mrnet.train.report import aggregate, optimistic


def test_scores_by_hand():
    # true 0: 3 tracks, 2 right; true 1: 2 tracks, both right; true 2: 1 track, called 0
    conf = confusion([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0], 3)
    assert conf.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = scores(conf)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["precision"] == pytest.approx([2 / 3, 2 / 3, 0.0])
    assert s["recall"] == pytest.approx([2 / 3, 1.0, 0.0])
    assert s["f1"] == pytest.approx([2 / 3, 0.8, 0.0])
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 3)
    assert s["support"] == [3, 2, 1]


def test_macro_f1_ignores_classes_absent_from_labels_and_predictions():
    s = scores(confusion([0, 1], [0, 1], 4))
    assert s["macro_f1"] == 1.0 and s["accuracy"] == 1.0


def test_evaluate_matches_weighted_cross_entropy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3))
    xs = [torch.randn(2, 1, 1, 3, 2), torch.randn(1, 1, 1, 3, 2)]
    ys = [torch.tensor([0, 2]), torch.tensor([1])]
    w = torch.tensor([1.0, 2.0, 0.5])
    m = evaluate(model, zip(xs, ys), num_classes=3, device=torch.device("cpu"), class_weights=w)
    with torch.no_grad():
        logits, y = model(torch.cat(xs)), torch.cat(ys)
    assert m["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y, weight=w)), rel=1e-6)
    assert m["accuracy"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert np.asarray(m["confusion"]).sum() == 3


def test_kfold_aggregation_mean_and_sample_std():
    rows = [{"fold": k, "test_accuracy": a, "test_macro_f1": f, "valid_accuracy": a, "optimistic_accuracy": None}
            for k, (a, f) in enumerate([(0.90, 0.80), (0.94, 0.86), (0.98, 0.86)])]
    agg = aggregate(rows)
    assert agg["n"] == 3
    assert agg["mean"]["test_accuracy"] == pytest.approx(0.94)
    assert agg["std"]["test_accuracy"] == pytest.approx(0.04)  # sample std (n - 1)
    assert agg["mean"]["test_macro_f1"] == pytest.approx(0.84)
    assert agg["std"]["test_macro_f1"] == pytest.approx(np.std([0.80, 0.86, 0.86], ddof=1))
    assert "optimistic_accuracy" not in agg["mean"]  # not every fold has it
    assert mean_std([0.5]) == (0.5, 0.0)


def test_optimistic_picks_the_best_test_epoch_earliest_on_ties():
    history = [{"epoch": e, "test_accuracy": a, "test_macro_f1": a} for e, a in [(1, 0.5), (2, 0.8), (3, 0.8), (4, 0.6)]]
    assert optimistic(history)["epoch"] == 2
    assert optimistic([{"epoch": 1}]) is None
