"""The extractor: audio file -> features, the same way for a dataset run and for ``mrnet-predict``.

``Extractor.from_config`` builds it for a new store; ``Extractor.from_provenance`` rebuilds it from
what a store recorded, and refuses when it cannot reproduce it (other weights, unknown feature kind).

>>> from mrnet.store.format import Provenance
>>> ex = Extractor.from_provenance(Provenance(feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1))
>>> import numpy as np
>>> ex.features([np.zeros((1, 16000), np.float32)])[0].shape
(1, 1, 63, 48)
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from mrnet.extract import audio
from mrnet.extract.engines import MEL, Engine, MelEngine, WavLMEngine, pick_device
from mrnet.store.errors import UserError
from mrnet.store.format import Provenance


@dataclass
class Extractor:
    engine: Engine
    channels: int = 1
    sample_rate: int = audio.SAMPLE_RATE

    @classmethod
    def from_config(cls, cfg, *, device: str | None = None) -> "Extractor":
        dev = pick_device(device)
        if cfg.features == "mel":
            return cls(MelEngine(device=dev), channels=cfg.channels)
        engine = WavLMEngine(
            model=cfg.model, revision=cfg.revision, layers=list(cfg.layers) if cfg.layers else None, device=dev,
            precision=cfg.precision, batch_size=cfg.batch_size, window_seconds=cfg.window_seconds, normalize=cfg.normalize,
            out_dtype=cfg.dtype,
        )
        return cls(engine, channels=cfg.channels)

    @classmethod
    def from_provenance(cls, prov: Provenance, *, device: str | None = "cpu") -> "Extractor":
        dev = pick_device(device)
        if prov.feature == "mel":
            if prov.extraction.get("mel", MEL) != MEL:
                raise UserError(f"the store's Mel settings {prov.extraction.get('mel')} differ from this mrnet's {MEL}; predict cannot reproduce them")
            return cls(MelEngine(device=dev), channels=prov.channels, sample_rate=prov.sample_rate)
        if prov.feature != "wavlm" or not prov.model:
            raise UserError(f"the store's feature kind {prov.feature!r} (model {prov.model!r}) is not one this mrnet can compute")
        revision = prov.model_revision if prov.model_revision and not prov.model_revision.startswith("local:") else None
        frames = int(prov.extraction.get("window_frames", 2000))
        engine = WavLMEngine(
            model=prov.model, revision=revision, layers=list(prov.layers), device=dev,
            window_seconds=frames / prov.frame_rate, normalize=prov.extraction.get("normalize"),
        )
        got = engine.describe()["model_revision"]
        if prov.model_revision and got != prov.model_revision:
            raise UserError(
                f"the store was extracted with {prov.model} at revision {prov.model_revision}, but the weights "
                f"available here are {got}; predictions would not match the features the model was trained on"
            )
        return cls(engine, channels=prov.channels, sample_rate=prov.sample_rate)

    # --- use ------------------------------------------------------------------------------------
    def load(self, path: Path) -> tuple[np.ndarray, audio.AudioInfo]:
        return audio.load_with_info(path, channels=self.channels, sample_rate=self.sample_rate)

    def features(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Features ``(channels, layers, frames, dim)`` float32 for each ``(channels, samples)`` track."""
        return self.engine.extract(audios)

    def features_for_file(self, path: Path) -> np.ndarray:
        """Decode, resample and extract one file; raises ``audio.AudioError`` naming an unreadable file."""
        wave, _ = self.load(Path(path))
        try:
            return self.features([wave])[0]
        except ValueError as err:
            raise audio.AudioError(f"{path}: {err}") from err

    def provenance(self, *, dataset: str, labeling: str, dtype: str, codec: str, chunk_frames: int) -> Provenance:
        meta = self.engine.describe()
        extraction = dict(meta["extraction"], codec=codec, chunk_frames=chunk_frames)
        return Provenance(
            feature=self.engine.feature, layers=list(self.engine.layers), dim=int(self.engine.dim),
            frame_rate=float(self.engine.frame_rate), channels=self.channels, dtype=dtype,
            sample_rate=self.sample_rate, model=meta["model"], model_revision=meta["model_revision"],
            dataset=dataset, labeling=labeling, extraction=extraction, versions=package_versions(),
        )


def package_versions() -> dict[str, str]:
    names = ["mrnet", "torch", "torchaudio", "transformers", "zarr", "numpy", "polars", "soundfile", "soxr"]
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing package is recorded as such
            out[name] = "not installed"
    return out
