"""WavLM hidden states through ``transformers``: 13 layers of 768 values at 50 frames/s for WavLM-base.

The model is frozen and its weights load through ``WavLMModel.from_pretrained``, from the hub
(``microsoft/wavlm-base``) or a local directory. Tracks go through in batches of equal-length
windows (``mrnet.extract.windows``), so a track's features never depend on what else is in its batch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.extract.audio import SAMPLE_RATE
from mrnet.extract.engines import hub
from mrnet.extract.engines.base import AudioInput, EngineBase, check_rebuilt, computes
from mrnet.extract.windows import Geometry, run_windowed

DEFAULT_MODEL = "microsoft/wavlm-base"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # model precision: auto = bf16 on GPU, fp32 on CPU


@computes("wavlm")
@dataclass
class WavLMEngine(EngineBase, AudioInput):
    """Frozen WavLM (eval mode, no gradients) returning the selected hidden states.

    ``model`` is a hub name (``microsoft/wavlm-base``, ``microsoft/wavlm-base-plus``) or a local
    directory written by ``save_pretrained``. Hidden state 0 is the transformer's input (after the
    feature projection and positional convolution); 1..12 are the transformer layers.
    """

    model: str = DEFAULT_MODEL
    layers: list[int] = field(
        default_factory=list
    )  # hidden-state numbers to keep; empty: all (filled in once the model loads)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    batch_size: int = 8
    window_seconds: float = 40.0
    normalize: bool | None = None  # None: follow the model's preprocessor config (False if it has none)
    revision: str | None = None
    out_dtype: str = "float32"  # dtype of returned features; float16 halves host memory before the store casts
    channels: int = 1  # each channel of a stereo track goes through the model separately
    feature: str = "wavlm"
    sample_rate: int = SAMPLE_RATE  # WavLM's input rate
    # Known once the weights load (__post_init__): the model's width, frame grid and window in frames.
    dim: int = field(init=False)
    geometry: Geometry = field(init=False)
    frame_rate: float = field(init=False)
    window_frames: int = field(init=False)

    def __post_init__(self):
        from transformers import WavLMModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        local_only = hub.offline(self.model)  # answered at once: offline, no half-minute of hub retries
        try:
            net = WavLMModel.from_pretrained(self.model, revision=self.revision, local_files_only=local_only)
        except Exception as err:  # noqa: BLE001 - missing, unreachable, truncated or foreign weights all land here
            raise hub.unavailable(
                self.model, err, offline=local_only, what="WavLM weights", example=DEFAULT_MODEL
            ) from err
        self._net = net.to(self.device).eval().requires_grad_(False)
        cfg = net.config
        total = cfg.num_hidden_layers + 1
        self.layers = list(self.layers) or list(range(total))
        bad = [layer for layer in self.layers if not 0 <= layer < total]
        if bad:
            raise UserError(f"--layers {bad}: this model has hidden states 0..{total - 1}")
        self.dim = int(cfg.hidden_size)
        self.geometry = Geometry.from_convs(list(cfg.conv_kernel), list(cfg.conv_stride))
        self.frame_rate = self.sample_rate / self.geometry.stride
        self.window_frames = max(1, int(round(self.window_seconds * self.frame_rate)))
        if self.normalize is None:
            self.normalize = _preprocessor_normalizes(self.model, self.revision, local_only)
        self._dtype = _autocast_dtype(self.precision, self.device)
        self._revision = getattr(cfg, "_commit_hash", None) or _local_digest(self.model)

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> WavLMEngine:
        """The engine an ``ExtractConfig`` asks for; loading the weights checks they exist."""
        return cls(
            model=cfg.model,
            revision=cfg.revision,
            layers=list(cfg.layers or ()),
            device=device,
            precision=cfg.precision,
            batch_size=cfg.batch_size,
            window_seconds=cfg.window_seconds,
            normalize=cfg.normalize,
            out_dtype=cfg.dtype,
            channels=cfg.channels,
        )

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> WavLMEngine:
        """The engine a store was written with, for new files; refuses other weights than the store's."""
        if not prov.model:
            raise UserError("the store records WavLM features but no model; it cannot be reproduced")
        revision = prov.model_revision if prov.model_revision and not prov.model_revision.startswith("local:") else None
        frames = prov.extraction.get("window_frames", 2000)
        normalize = prov.extraction.get("normalize")
        wrong = [
            (name, value, want)
            for name, value, want, ok in (
                ("window_frames", frames, "a positive whole number of frames", type(frames) is int and frames > 0),
                ("normalize", normalize, "true or false", normalize is None or type(normalize) is bool),
            )
            if not ok
        ]
        for name, value, want in wrong:
            raise UserError(
                f"the store records WavLM parameter extraction.{name} = {value!r}, not {want}; its features "
                "cannot be made again for new files. Predict with the mrnet version that wrote the store, or extract again."
            )
        engine = cls(
            model=prov.model,
            revision=revision,
            layers=list(prov.layers),
            device=device,
            window_seconds=frames / prov.frame_rate,
            normalize=normalize,
            channels=prov.channels,
        )
        check_rebuilt(engine, prov)
        geometry = prov.extraction.get("geometry")
        mine = {"stride": engine.geometry.stride, "receptive": engine.geometry.receptive}
        if geometry is not None and geometry != mine:
            raise UserError(
                f"the store records WavLM parameter extraction.geometry = {geometry}, but {prov.model} here has "
                f"{mine}: not the network the store was extracted with. Use the store's weights, or extract again."
            )
        got = engine.describe()["model_revision"]
        if prov.model_revision and got != prov.model_revision:
            raise UserError(
                f"the store was extracted with {prov.model} at revision {prov.model_revision}, but the weights "
                f"available here are {got}; predictions would not match the features the model was trained on"
            )
        return engine

    @torch.inference_mode()
    def _forward(self, wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(wave).to(self.device)
        if self.normalize:  # zero mean, unit variance per window, as Wav2Vec2FeatureExtractor does
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True) + 1e-7)
        with torch.autocast(self.device.type, dtype=self._dtype, enabled=self._dtype is not None):
            hidden = self._net(x, output_hidden_states=True).hidden_states
        stacked = torch.stack([hidden[layer] for layer in self.layers], dim=1)  # (B, L, T, D)
        return stacked.to(getattr(torch, self.out_dtype)).cpu().numpy()

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return run_windowed(
            items, self._forward, geometry=self.geometry, window=self.window_frames, batch_size=self.batch_size
        )

    def weights(self) -> tuple[str | None, str | None]:
        return self.model, self._revision

    def parameters(self) -> dict:
        return {
            "window_frames": self.window_frames,
            "normalize": bool(self.normalize),
            "precision": "fp32" if self._dtype is None else str(self._dtype).removeprefix("torch."),
            "geometry": {"stride": self.geometry.stride, "receptive": self.geometry.receptive},
        }


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision in ("auto", "bf16"):
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    raise UserError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")


def _preprocessor_normalizes(model: str, revision: str | None, local_only: bool = False) -> bool:
    try:
        from transformers import AutoFeatureExtractor

        extractor = AutoFeatureExtractor.from_pretrained(model, revision=revision, local_files_only=local_only)
        return bool(getattr(extractor, "do_normalize", False))
    except (OSError, ValueError):
        return False


def _local_digest(model: str) -> str | None:
    """``local:<sha1 of config.json + weights>`` for a model directory, so a store records which weights."""
    path = Path(model)
    if not path.is_dir():
        return None
    digest = hashlib.sha1()
    for name in sorted(os.listdir(path)):
        if name.endswith((".json", ".safetensors", ".bin")):
            digest.update(name.encode())
            digest.update((path / name).read_bytes())
    return f"local:{digest.hexdigest()[:16]}"
