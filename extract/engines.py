"""Feature engines: WavLM hidden states through ``transformers``, or 48-bin log-Mel through torchaudio.

An engine maps whole tracks ``(channels, samples)`` at 16 kHz to features ``(channels, layers,
frames, dim)`` float32, and says what it is (``describe``) so the store can record it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from mrnet.extract.windows import Geometry, run_windowed
from mrnet.store.errors import UserError

DEFAULT_MODEL = "microsoft/wavlm-base"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # model precision: auto = bf16 on GPU, fp32 on CPU
MEL = {"sample_rate": 16000, "n_fft": 512, "win_length": 512, "hop_length": 256, "n_mels": 48, "log": "10*log10(max(power, 1e-10))"}


class Engine(Protocol):
    feature: str
    layers: list[int]
    dim: int
    frame_rate: float

    def extract(self, tracks: list[np.ndarray]) -> list[np.ndarray]: ...

    def describe(self) -> dict: ...


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --- Mel ---------------------------------------------------------------------------------------------
@dataclass
class MelEngine:
    """48-bin log-Mel at 16 kHz, frame 512, hop 256 (Melon's parameters), one "layer"."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    feature: str = "mel"
    layers: list[int] = field(default_factory=lambda: [0])
    dim: int = MEL["n_mels"]
    frame_rate: float = MEL["sample_rate"] / MEL["hop_length"]

    def __post_init__(self):
        import torchaudio

        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=MEL["sample_rate"], n_fft=MEL["n_fft"], win_length=MEL["win_length"],
            hop_length=MEL["hop_length"], n_mels=MEL["n_mels"], power=2.0,
        ).to(self.device)

    @torch.inference_mode()
    def extract(self, tracks: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for audio in tracks:  # frame-local features: no batching subtleties, one track at a time
            power = self._mel(torch.from_numpy(audio).to(self.device))  # (C, n_mels, T)
            logmel = 10.0 * torch.log10(power.clamp_min(1e-10))
            out.append(logmel.transpose(1, 2).unsqueeze(1).cpu().numpy())  # (C, 1, T, n_mels)
        return out

    def describe(self) -> dict:
        return {"model": None, "model_revision": None, "extraction": {"mel": dict(MEL)}}


# --- WavLM -------------------------------------------------------------------------------------------
@dataclass
class WavLMEngine:
    """Frozen WavLM (eval mode, no gradients) returning the selected hidden states.

    ``model`` is a hub name (``microsoft/wavlm-base``, ``microsoft/wavlm-base-plus``) or a local
    directory written by ``save_pretrained``. Hidden state 0 is the transformer's input (after the
    feature projection and positional convolution); 1..12 are the transformer layers.
    """

    model: str = DEFAULT_MODEL
    layers: list[int] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    batch_size: int = 8
    window_seconds: float = 40.0
    normalize: bool | None = None  # None: follow the model's preprocessor config (False if it has none)
    revision: str | None = None
    out_dtype: str = "float32"  # dtype of returned features; float16 halves host memory before the store casts
    feature: str = "wavlm"

    def __post_init__(self):
        from transformers import WavLMModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            net = WavLMModel.from_pretrained(self.model, revision=self.revision)
        except OSError as err:
            raise UserError(
                f"--model {self.model!r}: cannot load WavLM weights ({str(err).splitlines()[0]}). "
                "Give a hub name this machine can download (e.g. microsoft/wavlm-base), a local directory "
                "written by save_pretrained, or use --features mel."
            ) from err
        self._net = net.to(self.device).eval().requires_grad_(False)
        cfg = net.config
        total = cfg.num_hidden_layers + 1
        self.layers = list(range(total)) if self.layers is None else list(self.layers)
        bad = [l for l in self.layers if not 0 <= l < total]
        if bad:
            raise UserError(f"--layers {bad}: this model has hidden states 0..{total - 1}")
        self.dim = int(cfg.hidden_size)
        self.geometry = Geometry.from_convs(list(cfg.conv_kernel), list(cfg.conv_stride))
        self.frame_rate = 16000 / self.geometry.stride
        self.window_frames = max(1, int(round(self.window_seconds * self.frame_rate)))
        if self.normalize is None:
            self.normalize = _preprocessor_normalizes(self.model, self.revision)
        self._dtype = _autocast_dtype(self.precision, self.device)
        self._revision = getattr(cfg, "_commit_hash", None) or _local_digest(self.model)

    @torch.inference_mode()
    def _forward(self, wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(wave).to(self.device)
        if self.normalize:  # zero mean, unit variance per window, as Wav2Vec2FeatureExtractor does
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True) + 1e-7)
        with torch.autocast(self.device.type, dtype=self._dtype, enabled=self._dtype is not None):
            hidden = self._net(x, output_hidden_states=True).hidden_states
        stacked = torch.stack([hidden[l] for l in self.layers], dim=1)  # (B, L, T, D)
        return stacked.to(getattr(torch, self.out_dtype)).cpu().numpy()

    def extract(self, tracks: list[np.ndarray]) -> list[np.ndarray]:
        return run_windowed(tracks, self._forward, geometry=self.geometry, window=self.window_frames, batch_size=self.batch_size)

    def describe(self) -> dict:
        return {
            "model": self.model,
            "model_revision": self._revision,
            "extraction": {
                "window_frames": self.window_frames,
                "normalize": bool(self.normalize),
                "precision": "fp32" if self._dtype is None else str(self._dtype).removeprefix("torch."),
                "geometry": {"stride": self.geometry.stride, "receptive": self.geometry.receptive},
            },
        }


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision in ("auto", "bf16"):
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    raise UserError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")


def _preprocessor_normalizes(model: str, revision: str | None) -> bool:
    try:
        from transformers import AutoFeatureExtractor

        return bool(getattr(AutoFeatureExtractor.from_pretrained(model, revision=revision), "do_normalize", False))
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
