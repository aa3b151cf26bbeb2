"""Genres of new audio files from a finished run: the run's selected model on features made as the store made them.

``Predictor.open(run)`` loads ``checkpoints/best.pt`` and rebuilds the feature engine from the store
provenance recorded in the run (``store.json``); it refuses a run whose features it cannot
reproduce. ``predict_files`` keeps going past unreadable files and reports each by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrnet.extract.engines import engine_for_store, features_of_file
from mrnet.core.errors import UserError
from mrnet.core.machine import pick_device
from mrnet.store.format import DTYPES, Provenance
from mrnet.train import normalize
from mrnet.train.runs import RunFolder, load_checkpoint
from mrnet.train.setup import build_model, model_input


@dataclass
class Prediction:
    """Top genres of one file, most probable first; ``error`` set (and ``top`` empty) when it failed."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "genres": [{"genre": g, "probability": p} for g, p in self.top]}


@dataclass
class Predictor:
    """A trained model and the engine that makes its input from audio files."""

    model: torch.nn.Module
    genres: list[str]
    provenance: Provenance
    layer_positions: list[int]
    engine: object
    device: torch.device

    @classmethod
    def open(cls, run_dir: Path, *, device: str = "cpu") -> "Predictor":
        run = RunFolder(Path(run_dir))
        if not run.config_file.exists():
            raise UserError(f"{run.path} is not a training run (no config.json). Pass a folder mrnet-train wrote.")
        cfg = run.config()
        if cfg.all_folds:
            raise UserError(f"{run.path} is a cross-validation run with one model per fold; pass one of them, e.g. {run.fold(0).path}")
        info = run.store_info()
        if not run.best.exists():
            raise UserError(f"{run.best} is missing: the run has not evaluated a model yet. Resume it: mrnet-train --resume {run.path}")
        best = load_checkpoint(run.best)
        prov = Provenance.from_json(info["provenance"], where=str(run.store_file))
        engine = make_engine(prov)
        norm = normalize.read(run.path, cfg.normalize or "instance")  # the statistics training used, not the store's
        model = build_model(cfg, model_input(prov, len(info["layer_positions"]), len(info["genres"])), norm)
        model.load_state_dict(best["model"])
        dev = pick_device(device)
        return cls(model.to(dev).eval(), info["genres"], prov, info["layer_positions"], engine, dev)

    @torch.no_grad()
    def predict(self, path: Path, *, top: int = 3) -> Prediction:
        """Top ``top`` genres of one file with softmax probabilities over the whole track."""
        try:
            feats = features_of_file(self.engine, Path(path))
        except Exception as err:  # noqa: BLE001 - any failure of one file is reported and the rest go on
            return Prediction(str(path), error=str(err) or type(err).__name__)
        # what training saw: the store's dtype, the run's layers
        feats = np.asarray(feats).astype(DTYPES[self.provenance.dtype]).astype(np.float32)[:, self.layer_positions]
        x = torch.from_numpy(feats)[None].to(self.device)  # (1, channels, layers, T, dim)
        probs = torch.softmax(self.model(x).float(), dim=1)[0].cpu()
        values, idx = probs.topk(min(top, len(self.genres)))
        return Prediction(str(path), [(self.genres[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())])


def make_engine(prov: Provenance):
    """The store's feature engine, rebuilt from its provenance; ``UserError`` when this install cannot."""
    try:
        return engine_for_store(prov, device="cpu")
    except UserError as err:
        raise UserError(f"cannot reproduce the features of the store this run was trained on: {err}") from err


def predict_files(predictor: Predictor, files: list[Path], *, top: int = 3) -> list[Prediction]:
    """One ``Prediction`` per file, in order; failures carry their error instead of genres."""
    return [predictor.predict(f, top=top) for f in files]
