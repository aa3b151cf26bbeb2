"""Which tracks of a store a run trains, selects and tests on: the official split, or one fold of k.

For fold k of K: test = fold k, valid = fold (k + 1) % K, train = the other K - 2 folds. Only tracks
that were extracted (status done) and carry a label take part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import polars as pl

from mrnet.core.errors import UserError


@dataclass(frozen=True)
class Splits:
    """The three parts of one run's data, and how they were chosen (for the report)."""

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    description: str

    def sizes(self) -> dict[str, int]:
        return {name: part.height for name, part in self.parts().items()}

    def parts(self) -> dict[str, pl.DataFrame]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


def usable(tracks: pl.DataFrame) -> pl.DataFrame:
    """Tracks that can be trained on: extracted (status done) and labelled (a genre, or a list of tags,
    which may be empty: a clip with none of the kept tags is a negative for every one)."""
    labelled = pl.col("label").is_not_null()
    if "tags" in tracks.columns:
        labelled = labelled | pl.col("tags").is_not_null()
    return tracks.filter((pl.col("status") == "done") & labelled & pl.col("frames").is_not_null())


def fold_count(tracks: pl.DataFrame) -> int:
    """Number of folds ``K`` in the manifest (``max fold + 1``), 0 when it has none.

    >>> fold_count(pl.DataFrame({"fold": [0, 2, 1, None]}))
    3
    """
    folds = tracks["fold"].drop_nulls()
    return int(cast(int, folds.max())) + 1 if folds.len() else 0  # polars types max() as any literal


def fold_roles(fold: int, k: int) -> tuple[int, int]:
    """``(test fold, valid fold)`` for run ``fold`` of ``k``: test = fold, valid = the next one.

    >>> fold_roles(3, 10), fold_roles(9, 10)
    ((3, 4), (9, 0))
    """
    return fold, (fold + 1) % k


def has_official_split(tracks: pl.DataFrame) -> bool:
    return bool(tracks["split"].drop_nulls().len())


def split_tracks(tracks: pl.DataFrame, *, fold: int | None = None, where: str = "the store") -> Splits:
    """Train / valid / test tracks: the official split, or fold ``fold`` of a k-fold manifest.

    For fold k of K: test = fold k, valid = fold (k + 1) % K, train = the other K - 2 folds. Raises
    ``UserError`` when a part is empty or the training part has fewer than two classes.
    """
    tracks = usable(tracks)
    if fold is None:
        if not has_official_split(tracks):
            raise UserError(
                f"{where} has no official train/valid/test split; pass --fold K or --folds all to use its folds."
            )
        parts = {name: tracks.filter(pl.col("split") == name) for name in ("train", "valid", "test")}
        description = "official split"
    else:
        k = fold_count(tracks)
        if k == 0:
            raise UserError(f"{where} has no folds (only an official split); drop --fold/--folds.")
        if fold >= k:
            raise UserError(f"--fold {fold}: {where} has folds 0..{k - 1}.")
        test_fold, valid_fold = fold_roles(fold, k)
        parts = {
            "test": tracks.filter(pl.col("fold") == test_fold),
            "valid": tracks.filter(pl.col("fold") == valid_fold),
            "train": tracks.filter(pl.col("fold").is_not_null() & ~pl.col("fold").is_in([test_fold, valid_fold])),
        }
        description = (
            f"fold {fold} of {k}: test = fold {test_fold}, valid = fold {valid_fold}, train = the other {k - 2}"
        )
    for name in ("train", "valid", "test"):
        if parts[name].height == 0:
            what = "training split" if name == "train" else f"{name} split"
            raise UserError(
                f"{where}: the {what} is empty ({description}). "
                + ("A k-fold run needs at least 3 folds. " if fold is not None else "")
                + "Re-extract with a split or fold list that fills it."
            )
    if "tags" in parts["train"].columns and parts["train"]["label"].null_count() == parts["train"].height:
        if parts["train"]["tags"].list.len().sum() == 0:
            raise UserError(
                f"{where}: no training track has a tag; a tagger needs positive examples. Check the tags the store was extracted with."
            )
        return Splits(parts["train"], parts["valid"], parts["test"], description)
    classes = parts["train"]["label"].n_unique()
    if classes < 2:
        raise UserError(
            f"{where}: the training split has {classes} class; a classifier needs at least two. Check the labels the store was extracted with."
        )
    return Splits(parts["train"], parts["valid"], parts["test"], description)
