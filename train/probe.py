"""How ``--model linear`` is fitted: logistic regression on whole-track statistics, its C chosen on validation.

The probe (``models/linear.py``) is statistics pooling -> standardisation -> one linear layer. Its
fit needs no epochs: every track's per-feature mean and standard deviation over the whole track
(after the run's input normalisation) are computed once, standardised with the training tracks'
mean and std (the probe's BatchNorm buffers), and scikit-learn's ``LogisticRegression`` (L2, class
weights ``balanced``, the same ratios as the loop's) is fitted for each regularisation strength in
:data:`GRID`. Each fit is one row of ``metrics.jsonl`` ("epoch" i is the i-th C, with its
validation and test metrics, and ``seconds`` that fit's own time); the one with the best validation metric (ties: lower validation
loss, then the stronger regularisation) is kept as ``checkpoints/best.pt``. The test split chose
nothing. Resuming a probe fits it again: it takes seconds and gives the same weights.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from mrnet.store.reader import FeatureStore
from mrnet.train import events as tensorboard
from mrnet.train import predictions
from mrnet.train import report as reports
from mrnet.train import state as keys
from mrnet.train.evaluate import evaluate
from mrnet.train.models.linear import stats_pool
from mrnet.train.runs import RunFolder, save_checkpoint

GRID = tuple(10.0**k for k in range(-4, 4))  # C = 1e-4 ... 1e3


def standardize(train: np.ndarray, *others: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, ...]:
    """Statistics standardised with the training tracks' mean and variance (the probe's BatchNorm, eps
    as its default), training first: ``(train, *others)``."""
    mean, var = train.mean(axis=0), train.var(axis=0)
    return tuple((x - mean) / np.sqrt(var + eps) for x in (train, *others))


def logistic(c: float, z: np.ndarray, y: np.ndarray):
    """scikit-learn's ``LogisticRegression`` (L2, strength ``1/c``, class weights ``balanced``) fitted on ``(z, y)``."""
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence notes at large C: the validation metric judges the result
        return LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(z, y)


def head(clf, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted ``logistic`` as the probe's linear layer over all ``classes``: ``(weight, bias)``; a class
    absent from training gets bias -1e4, so it is never predicted.

    >>> weight, bias = head(logistic(1.0, np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 2, 2])), 3)
    >>> weight.shape, float(bias[1]), bool(weight[0, 0] == 0 and weight[2, 0] > 0)
    ((3, 1), -10000.0, True)
    """
    coef, bias = np.zeros((classes, clf.coef_.shape[1])), np.zeros(classes)
    if len(clf.classes_) == 2:  # binary: one row for class 1
        coef[clf.classes_[1]], bias[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        coef[clf.classes_], bias[clf.classes_] = clf.coef_, clf.intercept_
    bias[np.setdiff1d(np.arange(classes), clf.classes_)] = -1e4
    return coef, bias


def improves(value: float, loss: float, best: dict | None) -> bool:
    """Whether a fit with validation metric ``value`` and loss ``loss`` replaces ``best`` (its ``metric``
    and ``loss``): a higher metric, or the same with a lower loss; a tie keeps the earlier, stronger
    regularisation."""
    return best is None or value > best["metric"] or (value == best["metric"] and loss < best["loss"])


def _statistics(model, store: FeatureStore, tracks, layer_positions: list[int]) -> np.ndarray:
    """``(tracks, 2 * features)``: each whole track's pooled statistics, after the run's input normalisation."""
    norm = getattr(model, "input_norm", None)
    rows = []
    with torch.no_grad():
        for key in tracks["key"]:
            x = torch.from_numpy(store.read(key, layers=layer_positions).astype(np.float32))[None]
            rows.append(stats_pool(norm(x) if norm is not None else x)[0].numpy().astype(np.float64))
    return np.stack(rows)


def fit(
    cfg,
    run: RunFolder,
    store: FeatureStore,
    splits,
    layer_positions: list[int],
    model,
    weights: torch.Tensor,
    evals: dict,
    genres: list[str],
    reporter,
) -> dict:
    """Fit the probe for every C, keep the validation-chosen one, write the report; returns it."""
    began = started = time.time()
    x = _statistics(model, store, splits.train, layer_positions)
    y = splits.train["label"].to_numpy()
    mean, var = x.mean(axis=0), x.var(axis=0)
    model.standardize.running_mean.copy_(torch.from_numpy(mean))
    model.standardize.running_var.copy_(torch.from_numpy(var))
    z = (x - mean) / np.sqrt(var + model.standardize.eps)
    train_eval = evals["train"]
    history, best, best_state = [], None, None
    reporter.start(run=run.path, description=splits.description, epochs=len(GRID), done=0, steps=1)
    # step i: the i-th C of the grid; a probe fitted again (resumed) replaces every point of the last fit
    curves = tensorboard.EventLog(tensorboard.folder_of(run.path), steps_per_epoch=1, purge_step=1)
    if curves.missing:
        reporter.note(curves.missing)
    for i, c in enumerate(GRID):
        coef, bias = head(logistic(c, z, y), len(genres))
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(coef))
            model.head.bias.copy_(torch.from_numpy(bias))
        record = {"epoch": i + 1, "C": c, "lr": 0.0}
        m = evaluate(model, train_eval, num_classes=len(genres), device=torch.device("cpu"), class_weights=weights)
        record.update(train_loss=m["loss"], train_accuracy=m["accuracy"])
        for name in ("valid", "test") if cfg.test_curve else ("valid",):
            m = evaluate(model, evals[name], num_classes=len(genres), device=torch.device("cpu"), class_weights=weights)
            record.update(
                {f"{name}_loss": m["loss"], f"{name}_accuracy": m["accuracy"], f"{name}_macro_f1": m["macro_f1"]}
            )
        value = record[f"valid_{cfg.select_metric}"]
        record["best"] = improves(value, record["valid_loss"], best)
        if record["best"]:
            best = {"epoch": i + 1, "metric": value, "loss": record["valid_loss"], "C": c}
            best_state = {
                "model": {k: v.clone() for k, v in model.state_dict().items()},
                keys.MODEL_NAME: cfg.model,
                "epoch": i + 1,
                "valid": {k: v for k, v in record.items() if k.startswith("valid_")},
                "C": c,
            }
        now = time.time()
        record["seconds"] = round(now - began, 3)  # this C's fit and evaluation (the first also the tracks' statistics)
        record["elapsed"] = round(now - started, 3)  # since the probe began: metrics.jsonl's seconds add up to it
        began = now
        history.append(record)
        run.append_metrics(record)
        reporter.epoch(record)
        curves.epoch(record)
    reporter.end()
    curves.close()
    assert best is not None and best_state is not None, "the first C of GRID is the best so far"
    save_checkpoint(run.best, best_state)
    save_checkpoint(
        run.last,
        {
            "model": best_state["model"],
            keys.MODEL_NAME: cfg.model,
            "epoch": len(GRID),
            "history": history,
            "best": best,
        },
    )
    model.load_state_dict(best_state["model"])
    kept = {
        part: evaluate(
            model, evals[part], num_classes=len(genres), device=torch.device("cpu"), class_weights=weights, keep=True
        )
        for part in ("valid", "test")
    }
    test = kept["test"]
    predictions.write(
        run.path / predictions.FILE,
        predictions.of_run(
            kept,
            evals,
            {"valid": splits.valid, "test": splits.test},
            batch_size=cfg.eval_batch_size,
            fold=cfg.fold,
            seed=cfg.seed,
            labels=genres,
        ),
    )
    result = reports.build(
        cfg=cfg,
        run=run,
        store=run.store_info(),
        history=history,
        best=best_state,
        test=test,
        model=model,
        class_weights=weights.tolist(),
    )
    result["selection"]["C"] = best["C"]
    result["selection"]["grid"] = list(GRID)
    reports.write(run, result)
    tensorboard.log_result(run.path, result, step=len(GRID))
    return result
