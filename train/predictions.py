"""Per-track outputs: ``predictions.parquet``, one row per evaluated track of the validation and test splits.

Every run (each fold of a ``--folds all`` run) writes it at the checkpoint chosen on validation, and
``mrnet-predict RUN --store STORE --split test`` writes the same table from stored features. Its
columns are :data:`COLUMNS`, then one ``prob:<label>`` column per genre (or tag), in the store's
label order, then with ``--embeddings`` an ``embedding`` column (``schema`` declares them all):

- ``track_id`` (the dataset's id), ``key`` (the store array), ``split`` (valid / test), ``fold``
  (the fold whose model scored the track; null on an official split), ``seed`` (the run's seed);
- ``true`` and ``predicted``: lists of label names. A genre track has one true genre and one
  predicted (the most probable); a tag clip has its true tags and the tags at or above the
  threshold chosen on validation (``threshold``, the same on every row; null for genres);
- ``prob:<label>``: the softmax probability of each genre, or the sigmoid score of each tag, as the
  run's evaluation averages them over a track's crops;
- ``embedding``: the model's pooled embedding, the input of its last linear layer (``penultimate``).

>>> frame = table(["a", "b"], ["ka", "kb"], split="test", fold=None, seed=0, labels=["rock", "pop"],
...               truth=np.array([0, 1]), probabilities=np.array([[0.9, 0.1], [0.6, 0.4]]))
>>> frame.select("track_id", "true", "predicted", "prob:pop").rows()
[('a', ['rock'], ['rock'], 0.10000000149011612), ('b', ['pop'], ['rock'], 0.4000000059604645)]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import torch

from mrnet.core.errors import UserError
from mrnet.core.files import atomic_path
from mrnet.manifests.schema import validate
from mrnet.train.loader import length_batches

FILE = "predictions.parquet"
PROB = "prob:"

#: The columns every predictions table starts with; ``schema`` adds the per-label and embedding columns.
COLUMNS = pl.Schema(
    cast(
        dict[str, pl.DataType],
        {
            "track_id": pl.String,
            "key": pl.String,
            "split": pl.String,  # valid | test (mrnet-predict: the split asked for)
            "fold": pl.Int16,  # the fold whose model scored the track; null on an official split
            "seed": pl.Int64,
            "true": pl.List(pl.String),  # one genre, or a clip's tags
            "predicted": pl.List(pl.String),  # the most probable genre, or the tags at or above threshold
            "threshold": pl.Float64,  # tags: the threshold chosen on validation; null for genres
        },
    )  # classes and instances of polars dtypes: a literal of both would be typed dict[str, object]
)


def schema(labels: Sequence[str], embedding: int | None = None) -> pl.Schema:
    """The full schema of a store with ``labels``; ``embedding``: the embedding width, if kept."""
    columns = dict(COLUMNS) | {f"{PROB}{name}": pl.Float32 for name in labels}
    if embedding is not None:
        columns["embedding"] = pl.Array(pl.Float32, embedding)
    return pl.Schema(columns)


def labels_of(frame: pl.DataFrame) -> list[str]:
    """The label names of a predictions table, in their order."""
    return [c.removeprefix(PROB) for c in frame.columns if c.startswith(PROB)]


def probabilities(frame: pl.DataFrame) -> np.ndarray:
    """``(tracks, labels)`` probabilities of a predictions table."""
    return frame.select([c for c in frame.columns if c.startswith(PROB)]).to_numpy().astype(np.float64)


def truth(frame: pl.DataFrame) -> np.ndarray:
    """Label indices ``(tracks,)`` (genres) or a multi-hot ``(tracks, labels)`` matrix (tags) of a predictions table."""
    labels = labels_of(frame)
    index = {name: i for i, name in enumerate(labels)}
    true = frame["true"].to_list()
    if frame["threshold"].is_null().all():
        return np.asarray([index[t[0]] for t in true], dtype=np.int64)
    hot = np.zeros((len(true), len(labels)), dtype=np.int64)
    for row, names in enumerate(true):
        hot[row, [index[n] for n in names]] = 1
    return hot


def table(
    track_ids: Sequence[str],
    keys: Sequence[str],
    *,
    split: str,
    fold: int | None,
    seed: int,
    labels: Sequence[str],
    truth: np.ndarray,
    probabilities: np.ndarray,
    threshold: float | None = None,
    embeddings: np.ndarray | None = None,
) -> pl.DataFrame:
    """The predictions of one split: ``truth`` is a label index per track (genres) or a multi-hot row (tags:
    then ``threshold`` says which tags are predicted); rows in the order given."""
    labels = list(labels)
    probs = np.asarray(probabilities, dtype=np.float32).reshape(len(track_ids), len(labels))
    multilabel = np.asarray(truth).ndim == 2
    if multilabel:
        true = [[labels[j] for j in np.flatnonzero(row)] for row in np.asarray(truth)]
        cut = 0.5 if threshold is None else threshold
        predicted = [[labels[j] for j in np.flatnonzero(row >= cut)] for row in probs]
    else:
        true = [[labels[int(t)]] for t in truth]
        predicted = [[labels[int(j)]] for j in probs.argmax(1)] if len(probs) else []
    data = {
        "track_id": list(track_ids),
        "key": list(keys),
        "split": [split] * len(track_ids),
        "fold": [fold] * len(track_ids),
        "seed": [seed] * len(track_ids),
        "true": true,
        "predicted": predicted,
        "threshold": [float(threshold) if multilabel and threshold is not None else None] * len(track_ids),
    }
    data |= {f"{PROB}{name}": probs[:, j] for j, name in enumerate(labels)}
    width = None
    if embeddings is not None:
        width = int(np.asarray(embeddings).shape[1])
        data["embedding"] = np.asarray(embeddings, dtype=np.float32)
    return pl.DataFrame(data, schema=schema(labels, width))


def write(path: Path, frames: Sequence[pl.DataFrame]) -> Path:
    """Write the tables (one per split) as one parquet file, atomically."""
    frame = pl.concat(list(frames), how="vertical")
    embedding = frame.schema.get("embedding")
    frame = validate(
        frame,
        schema(labels_of(frame), embedding.size if isinstance(embedding, pl.Array) else None),
        name=str(path),
    )
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)
    return path


def read(path: Path) -> pl.DataFrame:
    """A predictions table, checked against its schema; ``UserError`` naming the file if it is not one."""
    if not Path(path).is_file():
        raise UserError(
            f"{path} is missing: runs write it when they finish (a run from before predictions were kept has none; "
            f"make it with mrnet-predict RUN --store STORE --split test)"
        )
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - a damaged file fails in many ways
        raise UserError(
            f"{path} is not a readable predictions table ({type(err).__name__}: {err}); write it again with mrnet-predict"
        ) from err
    width = (
        frame.schema["embedding"].size
        if "embedding" in frame.columns and isinstance(frame.schema["embedding"], pl.Array)
        else None
    )
    return validate(frame, schema(labels_of(frame), width), name=str(path))


def eval_order(lengths: Sequence[int], batch_size: int) -> list[int]:
    """The order in which evaluation scores a split's tracks (``evaluate(keep=True)`` returns them so):
    the concatenated ``length_batches``, as ``setup.eval_loader`` makes them."""
    return [i for batch in length_batches(list(lengths), batch_size) for i in batch]


def penultimate(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose input is a model's pooled embedding: the last ``nn.Linear`` of its ``head``
    (MRNet's embedding, the CNNs' pooled features, NNET's last hidden layer), or the head itself."""
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Module):
        raise UserError(f"--embeddings: {type(model).__name__} has no head module to read its embedding from")
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1] if linears else head


def split_table(
    result: dict,
    tracks: pl.DataFrame,
    order: Sequence[int],
    *,
    split: str,
    fold: int | None,
    seed: int,
    labels: Sequence[str],
    threshold: float | None = None,
) -> pl.DataFrame:
    """The predictions of ``evaluate(keep=True)``'s ``result`` over ``tracks`` scored in ``order``."""
    picked = tracks[list(order)] if len(order) else tracks.head(0)
    return table(
        picked["track_id"].to_list(),
        picked["key"].to_list(),
        split=split,
        fold=fold,
        seed=seed,
        labels=labels,
        truth=result["truth"],
        probabilities=result["probabilities"],
        threshold=threshold,
        embeddings=result.get("embeddings"),
    )


def of_run(
    results: dict[str, dict],
    loaders: dict,
    tracks: dict[str, pl.DataFrame],
    *,
    batch_size: int,
    fold: int | None,
    seed: int,
    labels: Sequence[str],
    threshold: float | None = None,
) -> list[pl.DataFrame]:
    """The tables of a run's splits: ``results[split]`` is ``evaluate(keep=True)`` over ``loaders[split]``
    (made by ``setup.eval_loader`` with ``batch_size``) of ``tracks[split]``."""
    return [
        split_table(
            results[name],
            tracks[name],
            eval_order(loaders[name].dataset.lengths, batch_size),
            split=name,
            fold=fold,
            seed=seed,
            labels=labels,
            threshold=threshold,
        )
        for name in results
    ]


def test_rows(path: Path) -> pl.DataFrame | None:
    """A run's test predictions by store key (a ``--folds all`` run's folds together: each track once, scored by
    the fold that held it out); None when the run kept none (a run from before predictions were written)."""
    files = [path / FILE] if (path / FILE).is_file() else sorted(path.glob(f"fold-*/{FILE}"))
    if not files:
        return None
    return pl.concat([read(f) for f in files]).filter(pl.col("split") == "test").sort("key")


def pooled_intervals(runs: Sequence[str | Path], names: Sequence[str]) -> dict | None:
    """The 95 % bootstrap interval over test tracks of each of ``names`` averaged over ``runs`` (the seeds of
    one configuration, or one ``--folds all`` run's pooled folds): ``stats.mean_interval`` on their
    ``predictions.parquet``. None when a run kept no predictions or the runs were tested on different tracks."""
    from mrnet.train import stats

    tables = [test_rows(Path(run)) for run in runs]
    if not tables or any(t is None for t in tables):
        return None
    present = [t for t in tables if t is not None]
    if len({tuple(t["key"]) for t in present}) != 1 or len(present[0]) < 2:
        return None
    truth_, probs = truth(present[0]), [probabilities(t) for t in present]
    threshold = present[0]["threshold"][0]
    interval = {name: list(stats.mean_interval(truth_, probs, name, threshold=threshold)) for name in names}
    return {"tracks": len(truth_), "seeds": len(probs), "interval": interval}


__all__ = [
    "COLUMNS",
    "FILE",
    "eval_order",
    "labels_of",
    "of_run",
    "penultimate",
    "pooled_intervals",
    "probabilities",
    "read",
    "schema",
    "split_table",
    "table",
    "test_rows",
    "truth",
    "write",
]
