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
    rows = [
        {"fold": k, "test_accuracy": a, "test_macro_f1": f, "valid_accuracy": a, "optimistic_accuracy": None}
        for k, (a, f) in enumerate([(0.90, 0.80), (0.94, 0.86), (0.98, 0.86)])
    ]
    agg = aggregate(rows)
    assert agg["n"] == 3
    assert agg["mean"]["test_accuracy"] == pytest.approx(0.94)
    assert agg["std"]["test_accuracy"] == pytest.approx(0.04)  # sample std (n - 1)
    assert agg["mean"]["test_macro_f1"] == pytest.approx(0.84)
    assert agg["std"]["test_macro_f1"] == pytest.approx(np.std([0.80, 0.86, 0.86], ddof=1))
    assert "optimistic_accuracy" not in agg["mean"]  # not every fold has it
    assert mean_std([0.5]) == (0.5, 0.0)


def test_optimistic_picks_the_best_test_epoch_earliest_on_ties():
    history = [
        {"epoch": e, "test_accuracy": a, "test_macro_f1": a} for e, a in [(1, 0.5), (2, 0.8), (3, 0.8), (4, 0.6)]
    ]
    assert optimistic(history)["epoch"] == 2
    assert optimistic([{"epoch": 1}]) is None


def test_evaluate_averages_crop_probabilities_and_takes_the_loss_on_the_average():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3))
    x = torch.randn(2, 4, 1, 1, 3, 2)  # 2 tracks, 4 crops each
    y = torch.tensor([2, 0])
    m = evaluate(model, [(x, y)], num_classes=3, device=torch.device("cpu"))
    with torch.no_grad():
        p = torch.softmax(model(x.flatten(0, 1)), -1).view(2, 4, 3).mean(1)
    assert m["loss"] == pytest.approx(float(-torch.log(p[torch.arange(2), y]).mean()), rel=1e-6)
    assert m["accuracy"] == pytest.approx(float((p.argmax(1) == y).float().mean()))


def test_multilabel_evaluate_bce_auc_and_the_validation_threshold():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 2))
    xs = [torch.randn(3, 1, 1, 3, 2), torch.randn(3, 1, 1, 3, 2)]
    ys = [torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])]
    pos = torch.tensor([2.0, 1.0])
    m = evaluate(model, zip(xs, ys), num_classes=2, device=torch.device("cpu"), class_weights=pos, multilabel=True)
    with torch.no_grad():
        logits, y = model(torch.cat(xs)), torch.cat(ys)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=pos)
    assert m["loss"] == pytest.approx(float(bce), rel=1e-6)
    from sklearn.metrics import average_precision_score, roc_auc_score

    p = torch.sigmoid(logits).numpy()
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y.numpy(), p, average="macro"))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y.numpy(), p, average="macro"))
    fixed = evaluate(model, zip(xs, ys), num_classes=2, device=torch.device("cpu"), multilabel=True, threshold=0.99)
    assert fixed["threshold"] == 0.99 and fixed["recall"] <= m["recall"]


def test_tag_scores_by_hand_and_tags_without_positives():
    from mrnet.train.tagging import tag_scores

    # tag 0: positives 0.9, 0.6 above both negatives -> AUC 1; tag 1: 3 of 4 pairs ordered -> 0.75
    # tag 2: no positive clip -> no AUC, left out of the macro averages
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.7], [0.6, 0.4, 0.2], [0.1, 0.5, 0.3]])
    s = tag_scores(y, p, threshold=0.5)
    assert s["roc_auc_per_tag"] == [1.0, 0.75, None]
    assert s["roc_auc"] == pytest.approx(0.875)
    # tag 1 ranked +, -, +, -: precision 1 at the first positive and 2/3 at the second
    assert s["pr_auc_per_tag"][1] == pytest.approx((1 + 2 / 3) / 2)
    # at 0.5: hits (0,0) (1,1) (2,0); false alarms (1,2) (3,1); missed (2,1)
    assert s["precision"] == pytest.approx(3 / 5) and s["recall"] == pytest.approx(3 / 4)
    assert s["positives"] == [2, 2, 0]
