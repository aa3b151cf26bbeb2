"""Predictions of a finished run from stored features: ``mrnet-predict RUN --store STORE --split test``.

No audio is decoded: the run's validation-selected model scores the tracks of one split of a store
whose features are those it was trained on (``setup.check_same_store`` refuses another), each track
as the run evaluated it (its ``eval_unit``, its input normalisation), and the result is a
``predictions.py`` table, the schema of the ``predictions.parquet`` every run writes. A ``--folds
all`` run scores each fold's split with that fold's model (test: every track once). With
``embeddings``, each track's pooled embedding (the input of the model's last linear layer,
``predictions.penultimate``) is kept, so it can be probed or plotted with other tools.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mrnet.core.errors import UserError
from mrnet.core.machine import pick_device
from mrnet.train import predictions
from mrnet.train.config import parse_eval_unit
from mrnet.train.crops import EvalUnit, TrackDataset, track_targets
from mrnet.train.evaluate import evaluate
from mrnet.train.predict import _load
from mrnet.train.runs import RunFolder
from mrnet.train.setup import check_same_store, crop_frames, eval_loader, open_store
from mrnet.train.splits import split_tracks
from mrnet.train.tasks import MULTI

SPLITS = ("train", "valid", "test")


def parts_of(run: RunFolder) -> list[RunFolder]:
    """The run itself, or each fold of a ``--folds all`` run."""
    cfg = run.config()
    if not cfg.all_folds:
        return [run]
    folds = sorted((p.parent for p in run.path.glob("fold-*/config.json")), key=lambda p: int(p.name.split("-")[1]))
    if not run.finished or not folds:
        raise UserError(
            f"{run.path} has not finished every fold; resume it (mrnet-train --resume {run.path}), or pass one fold, e.g. {run.fold(0).path}"
        )
    return [RunFolder(p) for p in folds]


def predict_split(
    run_dir: Path, store: str, split: str = "test", *, embeddings: bool = False, device: str = "cpu"
) -> pl.DataFrame:
    """The predictions table of ``split`` of ``store`` by the run in ``run_dir`` (each fold's model on its own split)."""
    if split not in SPLITS:
        raise UserError(f"--split {split}: choose one of {', '.join(SPLITS)}")
    run = RunFolder(Path(run_dir))
    opened = open_store(store)
    dev = pick_device(device)
    tables = []
    for part in parts_of(run):
        check_same_store(part, opened)
        cfg = part.config()
        model, info, best = _load(part)
        model = model.to(dev).eval()
        labels = info["genres"]
        multilabel = opened.provenance.task == MULTI
        tracks = getattr(split_tracks(opened.tracks, fold=cfg.fold, where=opened.location.url), split)
        kind, n = parse_eval_unit(cfg.eval_unit or "whole")
        eval_unit = EvalUnit(kind, crop=crop_frames(cfg, opened.provenance.frame_rate, model), chunks=n)
        dataset = TrackDataset(
            opened.location,
            tracks,
            info["layer_positions"],
            eval_unit=eval_unit,
            targets=track_targets(tracks, labels if multilabel else None),
        )
        threshold = best["valid"].get("valid_threshold")
        result = evaluate(
            model,
            eval_loader(dataset, cfg, dev),
            num_classes=len(labels),
            device=dev,
            multilabel=multilabel,
            threshold=threshold,
            keep=True,
            embed=predictions.penultimate(model) if embeddings else None,
        )
        tables.append(
            predictions.split_table(
                result,
                tracks,
                predictions.eval_order(dataset.lengths, cfg.eval_batch_size),
                split=split,
                fold=cfg.fold,
                seed=cfg.seed,
                labels=labels,
                threshold=threshold,
            )
        )
    return pl.concat(tables, how="vertical")


def write_split(
    run_dir: Path,
    store: str,
    split: str = "test",
    *,
    embeddings: bool = False,
    out: Path | None = None,
    device: str = "cpu",
) -> str:
    """``mrnet-predict --store``: write the table (``out``, by default ``RUN/predictions-SPLIT.parquet``) and say
    what it holds: the split's headline numbers with their bootstrap intervals, and where it is."""
    from mrnet.train import stats
    from mrnet.train.render import ci
    from mrnet.train.tasks import HEADLINE, SINGLE, label

    table = predict_split(run_dir, store, split, embeddings=embeddings, device=device)
    path = predictions.write(Path(out) if out else Path(run_dir) / f"predictions-{split}.parquet", [table])
    truth, probs = predictions.truth(table), predictions.probabilities(table)
    names = HEADLINE[MULTI if truth.ndim == 2 else SINGLE]
    interval = stats.intervals(truth, probs, names)
    scored = ", ".join(f"{label(name)} {ci(name, stats.metric(name, truth, probs), interval)}" for name in names)
    return f"{table.height} {split} tracks: {scored} (95 % bootstrap intervals over the tracks)\nWrote {path}"


__all__ = ["SPLITS", "parts_of", "predict_split", "write_split"]
