"""A frozen transformers audio encoder returning the selected hidden states: the one implementation
behind ``--features wavlm`` and ``--features ssl``.

The two kinds differ only in what they fix and what they read from the model's files, which each
declares in its own file: ``wavlm`` (:mod:`.wavlm`) is this engine with WavLM's network class, a
16 kHz input and its own provenance record; ``ssl`` (:mod:`.ssl`) takes any wav2vec 2.0-style encoder
and reads its rate and normalisation from its feature extractor. Both load the weights, keep the
hidden states asked for, and run tracks through the equal-length windows of
:mod:`mrnet.extract.windows`, so a track's features never depend on what else is in its batch. This
module registers no kind (the registration order of the kinds is the order ``--features`` lists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.extract.engines import hub
from mrnet.extract.engines.base import AudioInput, EngineBase, check_rebuilt
from mrnet.extract.windows import Geometry, run_windowed

DEFAULT_MODEL = "microsoft/wavlm-base"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # model precision: auto = bf16 on GPU, fp32 on CPU


@dataclass
class EncoderEngine(EngineBase, AudioInput):
    """Frozen encoder (eval mode, no gradients): ``model`` is a hub name or a local directory written by
    ``save_pretrained``. Hidden state 0 is the transformer's input (after the feature projection and
    positional convolution); 1.. are the transformer layers. A kind subclasses it with ``_load`` and
    ``_input_rate`` (what it reads from the model's files) and ``parameters`` (what its store records)."""

    #: the model's own files, for a local folder's ``local:`` digest (store/provenance ``model_revision``)
    DIGEST_FILES: ClassVar[tuple[str, ...]] = (".json", ".safetensors", ".bin")
    #: per-window normalisation divides by the sample variance (1) or the population variance (0)
    VARIANCE_CORRECTION: ClassVar[int] = 0

    model: str = DEFAULT_MODEL
    layers: list[int] = field(default_factory=list)  # hidden-state numbers to keep; empty: all (once the model loads)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    batch_size: int = 8
    window_seconds: float = 40.0
    normalize: bool | None = None  # None: follow the model's feature extractor (False if it has none)
    revision: str | None = None
    out_dtype: str = "float32"  # dtype of returned features; float16 halves host memory before the store casts
    channels: int = 1  # each channel of a stereo track goes through the model separately
    feature: str = ""
    # Known once the weights load (__post_init__): the input rate, the model's width, frame grid and window in frames.
    sample_rate: int = field(init=False)
    dim: int = field(init=False)
    geometry: Geometry = field(init=False)
    frame_rate: float = field(init=False)
    window_frames: int = field(init=False)

    def __post_init__(self) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        local_only = hub.offline(self.model)  # answered at once: offline, no half-minute of hub retries
        net, extractor = self._load(local_only)
        cfg = net.config
        self._net = net.to(self.device).eval().requires_grad_(False)
        total = int(cfg.num_hidden_layers) + 1
        self.layers = list(self.layers) or list(range(total))
        bad = [layer for layer in self.layers if not 0 <= layer < total]
        if bad:
            raise UserError(f"--layers {bad}: {self.model} has hidden states 0..{total - 1}")
        self.dim = int(cfg.hidden_size)
        self.sample_rate = self._input_rate(extractor)
        self.geometry = Geometry.from_convs(list(cfg.conv_kernel), list(cfg.conv_stride))
        self.frame_rate = self.sample_rate / self.geometry.stride
        self.window_frames = max(1, int(round(self.window_seconds * self.frame_rate)))
        if self.normalize is None:
            self.normalize = bool(getattr(extractor, "do_normalize", False))
        self._dtype = _autocast_dtype(self.precision, self.device)
        self._revision = getattr(cfg, "_commit_hash", None) or hub.local_digest(self.model, self.DIGEST_FILES)

    def _load(self, local_only: bool) -> tuple[Any, Any]:
        """The network, and the model's feature extractor where the engine reads it (else ``None``)."""
        raise NotImplementedError

    def _input_rate(self, extractor: Any) -> int:
        """Samples per second the network takes."""
        raise NotImplementedError

    @classmethod
    def _options(cls, cfg: Any) -> dict[str, Any]:
        """What the kind takes from an ``ExtractConfig`` besides what every encoder does."""
        return {}

    @classmethod
    def from_config(cls, cfg: Any, device: torch.device) -> Self:
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
            **cls._options(cfg),
        )

    @classmethod
    def _rebuild(
        cls, prov: Any, device: torch.device, *, window_frames: int, normalize: bool | None, **options: Any
    ) -> Self:
        """The engine a store's record describes: its model (at the recorded hub revision; a local folder's
        digest is checked by ``_check_weights``), layers, window and channels, checked against what the
        store holds per track."""
        recorded = prov.model_revision or ""
        engine = cls(
            model=prov.model,
            revision=None if recorded.startswith("local:") or not recorded else recorded,
            layers=list(prov.layers),
            device=device,
            window_seconds=window_frames / prov.frame_rate,
            normalize=normalize,
            channels=prov.channels,
            **options,
        )
        check_rebuilt(engine, prov)
        return engine

    def _check_weights(self, prov: Any) -> None:
        """``UserError`` when the weights found here are not those a store recorded (rebuilt for new files)."""
        if prov.model_revision and self._revision != prov.model_revision:
            raise UserError(
                f"the store was extracted with {prov.model} at revision {prov.model_revision}, but the weights "
                f"available here are {self._revision}; predictions would not match the features the model was trained on"
            )

    @torch.inference_mode()
    def _forward(self, wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(wave).to(self.device)
        if self.normalize:  # zero mean, unit variance per window, as Wav2Vec2FeatureExtractor does
            var = x.var(dim=1, keepdim=True, correction=self.VARIANCE_CORRECTION)
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(var + 1e-7)
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

    @property
    def precision_used(self) -> str:
        """The precision the network runs in: fp32, or the autocast dtype (bfloat16, float16)."""
        return "fp32" if self._dtype is None else str(self._dtype).removeprefix("torch.")


def feature_extractor(model: str, **options: Any) -> Any:
    """The model's feature extractor (its input rate and normalisation), ``None`` where it ships none."""
    from transformers import AutoFeatureExtractor

    try:
        return AutoFeatureExtractor.from_pretrained(model, **options)
    except (OSError, ValueError):
        return None


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision in ("auto", "bf16"):
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    raise UserError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
