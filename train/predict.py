"""Genres (or tags) of new audio files from a finished run: its selected model on features made as the store made them.

``Predictor.open(run)`` loads ``checkpoints/best.pt`` and rebuilds the feature engine from the store
provenance recorded in the run (``store.json``); it refuses a run whose features it cannot
reproduce. A ``--folds all`` run predicts with every fold's model and averages their probabilities
(an ensemble). Each file is scored as the run evaluated tracks: the whole track, its centre crop or
several crops averaged (the run's ``eval_unit``), with softmax probabilities over genres or a sigmoid
per tag. ``files_from`` turns folders and CSV lists into files; ``predict_files`` keeps going past
unreadable files and reports each by name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.core.machine import pick_device
from mrnet.extract.datasets import AUDIO_SUFFIXES
from mrnet.extract.engines import Engine, engine_for_store, features_of_file
from mrnet.store.format import DTYPES, Provenance
from mrnet.train import normalize
from mrnet.train.config import parse_eval_unit
from mrnet.train.crops import EvalUnit, tile_frames
from mrnet.train.loop import crop_frames
from mrnet.train.runs import RunFolder, load_checkpoint, load_weights
from mrnet.train.setup import build_model, model_input
from mrnet.train.tasks import MULTI


@dataclass
class Prediction:
    """Top genres (or tags) of one file, most probable first; ``error`` set (and ``top`` empty) when it failed.
    For tags, ``tagged`` holds those at or above the threshold the run chose on validation."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    kind: str = "genre"  # or "tag"
    tagged: list[str] | None = None

    def to_json(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        out = {"path": self.path, f"{self.kind}s": [{self.kind: g, "probability": p} for g, p in self.top]}
        if self.tagged is not None:
            out["tagged"] = self.tagged
        return out


@dataclass
class Predictor:
    """Trained models (one, or one per fold) and the engine that makes their input from audio files."""

    models: list[torch.nn.Module]
    labels: list[str]  # genres, or tags
    provenance: Provenance
    layer_positions: list[int]
    engine: Engine
    device: torch.device
    eval_unit: EvalUnit = EvalUnit()  # what of a file is scored (the run's --eval-unit)
    multilabel: bool = False
    threshold: float | None = None  # tags: the validation threshold (the folds' mean for an ensemble)

    @property
    def model(self) -> torch.nn.Module:
        """The model of a single-split run."""
        return self.models[0]

    @classmethod
    def open(cls, run_dir: Path, *, device: str = "cpu") -> Predictor:
        run = RunFolder(Path(run_dir))
        if not run.config_file.exists():
            raise UserError(f"{run.path} is not a training run (no config.json). Pass a folder mrnet-train wrote.")
        cfg = run.config()
        folds = sorted(run.path.glob("fold-*/config.json")) if cfg.all_folds else []
        if cfg.all_folds and not run.finished:
            raise UserError(
                f"{run.path} has not finished every fold; resume it (mrnet-train --resume {run.path}), or pass one fold, e.g. {run.fold(0).path}"
            )
        parts = [RunFolder(p.parent) for p in folds] or [run]
        dev = pick_device(device)
        models, thresholds, infos = [], [], []
        for part in parts:
            model, info, best = _load(part)
            models.append(model.to(dev).eval())
            thresholds.append(best["valid"].get("valid_threshold"))
            infos.append(info)
        info, part = infos[0], parts[0]
        prov = Provenance.from_json(info["provenance"], where=str(part.store_file))
        part_cfg = part.config()
        kind, n = parse_eval_unit(part_cfg.eval_unit or "whole")
        eval_unit = EvalUnit(kind, crop=crop_frames(part_cfg, prov.frame_rate, models[0]), chunks=n)
        multilabel = prov.task == MULTI
        threshold = float(np.mean(thresholds)) if multilabel and None not in thresholds else None
        return cls(
            models,
            info["genres"],
            prov,
            info["layer_positions"],
            make_engine(prov),
            dev,
            eval_unit,
            multilabel,
            threshold,
        )

    @torch.no_grad()
    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(labels,)`` probabilities of one track's features ``(channels, stored layers, T, dim)``,
        averaged over the crops of its ``eval_unit`` and over the models."""
        x = np.asarray(features).astype(DTYPES[self.provenance.dtype]).astype(np.float32)[:, self.layer_positions]
        if self.eval_unit.kind == "whole":
            crops = x[None]
        else:
            crops = np.stack([_crop(x, start, self.eval_unit.crop) for start in self.eval_unit.starts(x.shape[2])])
        batch = torch.from_numpy(crops).to(self.device)  # (crops, channels, layers, T, dim)
        total: torch.Tensor | None = None
        for model in self.models:
            logits = model(batch).float()
            p = (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)).mean(0)
            total = p if total is None else total + p
        assert total is not None, "a Predictor holds one model at least"
        return (total / len(self.models)).cpu().numpy()

    def predict(self, path: Path, *, top: int = 3) -> Prediction:
        """Top ``top`` genres (or tags) of one file with their probabilities."""
        try:
            feats = features_of_file(self.engine, Path(path))
        except Exception as err:  # noqa: BLE001 - any failure of one file is reported and the rest go on
            return Prediction(str(path), error=str(err) or type(err).__name__)
        probs = self.probabilities(feats)
        order = np.argsort(-probs, kind="stable")[: min(top, len(self.labels))]
        ranked = [(self.labels[i], float(probs[i])) for i in order]
        if not self.multilabel:
            return Prediction(str(path), ranked)
        tagged = [t for t, p in zip(self.labels, probs) if self.threshold is not None and p >= self.threshold]
        return Prediction(str(path), ranked, kind="tag", tagged=tagged)


def _load(run: RunFolder) -> tuple[torch.nn.Module, dict, dict]:
    """One run's (or fold's) selected model, its store record and its best checkpoint."""
    cfg = run.config()
    if not run.best.exists():
        raise UserError(
            f"{run.best} is missing: the run has not evaluated a model yet. Resume it: mrnet-train --resume {run.path}"
        )
    info = run.store_info()
    best = load_checkpoint(run.best)
    prov = Provenance.from_json(info["provenance"], where=str(run.store_file))
    norm = normalize.read(run.path, cfg.normalize or "instance")  # the statistics training used, not the store's
    model = build_model(cfg, model_input(prov, len(info["layer_positions"]), len(info["genres"])), norm)
    load_weights(model, best, run.best, cfg)
    return model, info, best


def _crop(x: np.ndarray, start: int, frames: int) -> np.ndarray:
    """``frames`` frames of ``x (channels, layers, T, dim)`` from ``start``; a shorter track repeated, as in training."""
    part = x[:, :, start : start + frames]
    return part if part.shape[2] == frames else tile_frames(part, frames)


def make_engine(prov: Provenance) -> Engine:
    """The store's feature engine, rebuilt from its provenance; ``UserError`` when this install cannot."""
    try:
        return engine_for_store(prov, device="cpu")
    except UserError as err:
        raise UserError(f"cannot reproduce the features of the store this run was trained on: {err}") from err


def files_from(inputs: list[Path]) -> list[Path]:
    """The audio files ``inputs`` name: files as given, every audio file under a folder (sorted), and
    the files a ``.csv`` lists (its ``path`` column, or its first; relative paths from the CSV's folder)."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.name.lower().endswith(AUDIO_SUFFIXES))
            if not found:
                raise UserError(f"{item} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            out += found
        elif item.suffix.lower() == ".csv":
            if (
                not item.is_file()
            ):  # a FIFO would wait for a writer for ever (audio files: extract.audio.require_regular)
                raise UserError(
                    f"{item} is not a regular file (a missing file, FIFO, device or socket is never opened): pass a CSV file"
                )
            with item.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            if not rows:
                raise UserError(f"{item} is empty: list one audio file per row, under a header 'path'")
            column = rows[0].index("path") if "path" in rows[0] else 0
            body = rows[1:] if "path" in rows[0] else rows
            out += [
                p if p.is_absolute() else item.parent / p
                for p in (Path(r[column]) for r in body if r and r[column].strip())
            ]
        else:
            out.append(item)
    return out


def predict_files(predictor: Predictor, files: list[Path], *, top: int = 3) -> list[Prediction]:
    """One ``Prediction`` per file, in order; failures carry their error instead of genres."""
    return [predictor.predict(f, top=top) for f in files]
