"""Every hidden state of any transformers audio encoder: WavLM, HuBERT, wav2vec 2.0, data2vec-audio, MERT.

``--features ssl --model NAME_OR_DIR`` loads the model through ``AutoConfig`` / ``AutoFeatureExtractor``
/ ``AutoModel`` and reads everything that fixes its features from the model's own files: the input
sample rate and normalisation from its feature extractor (``sampling_rate``, ``do_normalize``), the
frame grid from its convolutional front end (``conv_kernel``, ``conv_stride``), the layer count and
width from its config. Any encoder with that wav2vec 2.0-style front end and ``output_hidden_states``
works; docs/encoders.md lists the published ones with their rates and store sizes.

A model whose code is not in transformers (MERT: ``auto_map`` in its config) loads only with
``--trust-remote-code``, which the store records; ``mrnet-predict`` then runs that code again only at
the recorded revision (the hub commit, or the content hash of a local folder, code included, checked
before anything is imported). Tracks go through the equal-length windows of
:mod:`mrnet.extract.windows`, so batching never changes a feature.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.extract.engines import hub
from mrnet.extract.engines.base import AudioInput, EngineBase, check_rebuilt, computes, stored_params
from mrnet.extract.engines.wavlm import DEFAULT_MODEL, _autocast_dtype
from mrnet.extract.windows import Geometry, run_windowed

log = logging.getLogger("mrnet.extract.engines.ssl")
FALLBACK_RATE = 16000  # the rate of every wav2vec 2.0-family model, for a model that ships no feature extractor
_DIGEST_FILES = (".json", ".safetensors", ".bin", ".py")  # a local folder's weights, config and (remote) code


@dataclass(frozen=True)
class SslParams:
    """What fixes an ``ssl`` store's features besides the weights; recorded as ``extraction.ssl``."""

    architecture: str = ""  # the config's model_type: wavlm, hubert, wav2vec2, data2vec-audio, or the remote code's own
    window_frames: int = 2000
    normalize: bool = False  # zero mean, unit variance per window, as the model's feature extractor does
    precision: str = "fp32"
    stride: int = 320  # samples per frame of the convolutional front end
    receptive: int = 400  # samples one frame sees
    trust_remote_code: bool = False  # the model's code came with its weights (the user allowed it)


@computes("ssl")
@dataclass
class SslEngine(EngineBase, AudioInput):
    """A frozen transformers audio encoder (eval mode, no gradients) returning the selected hidden states."""

    model: str = DEFAULT_MODEL
    layers: list[int] = field(default_factory=list)  # hidden-state numbers to keep; empty: all
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"
    batch_size: int = 8
    window_seconds: float = 40.0
    normalize: bool | None = None  # None: as the model's feature extractor says
    revision: str | None = None
    out_dtype: str = "float32"
    channels: int = 1
    trust_remote_code: bool = False
    feature: str = "ssl"
    # Known once the model loads (__post_init__).
    sample_rate: int = field(init=False)
    dim: int = field(init=False)
    geometry: Geometry = field(init=False)
    frame_rate: float = field(init=False)
    window_frames: int = field(init=False)

    def __post_init__(self):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        local_only = hub.offline(self.model)
        self._check_remote_code(local_only)
        net, extractor = self._load(local_only)
        cfg = net.config
        missing = [
            name
            for name in ("conv_kernel", "conv_stride", "hidden_size", "num_hidden_layers")
            if not hasattr(cfg, name)
        ]
        if missing:
            raise UserError(
                f"--model {self.model!r} ({cfg.model_type}) is not a wav2vec 2.0-style audio encoder: its config has no "
                f"{', '.join(missing)}. --features ssl takes WavLM, HuBERT, wav2vec 2.0, data2vec-audio, MERT and their kin."
            )
        self._net = net.to(self.device).eval().requires_grad_(False)
        total = int(cfg.num_hidden_layers) + 1
        self.layers = list(self.layers) or list(range(total))
        bad = [n for n in self.layers if not 0 <= n < total]
        if bad:
            raise UserError(f"--layers {bad}: {self.model} has hidden states 0..{total - 1}")
        self.dim = int(cfg.hidden_size)
        self.sample_rate = int(getattr(extractor, "sampling_rate", None) or FALLBACK_RATE)
        if extractor is None:
            log.warning("%s ships no feature extractor: taking %d Hz input, not normalised", self.model, FALLBACK_RATE)
        self.geometry = Geometry.from_convs(list(cfg.conv_kernel), list(cfg.conv_stride))
        self.frame_rate = self.sample_rate / self.geometry.stride
        self.window_frames = max(1, int(round(self.window_seconds * self.frame_rate)))
        if self.normalize is None:
            self.normalize = bool(getattr(extractor, "do_normalize", False))
        self._dtype = _autocast_dtype(self.precision, self.device)
        self._architecture = str(cfg.model_type)
        self._revision = getattr(cfg, "_commit_hash", None) or hub.local_digest(self.model, _DIGEST_FILES)

    def _check_remote_code(self, local_only: bool) -> None:
        """Refuse, before anything is imported, a model that brings its own code without --trust-remote-code."""
        from transformers import PretrainedConfig

        try:
            config, _ = PretrainedConfig.get_config_dict(
                self.model, revision=self.revision, local_files_only=local_only
            )
        except Exception as err:  # noqa: BLE001 - missing, unreachable or unreadable config
            raise hub.unavailable(
                self.model, err, offline=local_only, what="an audio encoder", example=DEFAULT_MODEL
            ) from err
        if config.get("auto_map") and not self.trust_remote_code:
            raise UserError(
                f"--model {self.model!r} brings its own Python code ({config.get('model_type')}: auto_map in its config), "
                "which runs on this machine when the model loads. Pass --trust-remote-code if you trust its source; "
                "the store records that you did."
            )

    def _load(self, local_only: bool):
        from transformers import AutoFeatureExtractor, AutoModel

        options = {
            "revision": self.revision,
            "local_files_only": local_only,
            "trust_remote_code": self.trust_remote_code,
        }
        try:
            net = AutoModel.from_pretrained(self.model, **options)
        except Exception as err:  # noqa: BLE001 - missing, truncated or foreign weights, an unknown architecture
            raise hub.unavailable(
                self.model, err, offline=local_only, what="an audio encoder", example=DEFAULT_MODEL
            ) from err
        try:
            extractor = AutoFeatureExtractor.from_pretrained(self.model, **options)
        except (OSError, ValueError):
            extractor = None
        return net, extractor

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> SslEngine:
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
            trust_remote_code=cfg.trust_remote_code,
        )

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> SslEngine:
        """The engine a store was written with; its weights (and any code they bring) only at the recorded revision."""
        if not prov.model:
            raise UserError("the store records ssl features but no model; they cannot be made again for new files")
        params = stored_params(prov, "ssl", SslParams, what="ssl")
        recorded = prov.model_revision or ""
        if recorded.startswith("local:"):
            here = hub.local_digest(prov.model, _DIGEST_FILES)
            if (
                here != recorded
            ):  # checked before loading: remote code runs only if it is the code the store was made with
                raise UserError(
                    f"the store was extracted with {prov.model} at {recorded}, but the folder here is "
                    f"{here or 'missing'}; predictions would not match. Use the store's model folder, or extract again."
                )
        engine = cls(
            model=prov.model,
            revision=None if recorded.startswith("local:") or not recorded else recorded,
            layers=list(prov.layers),
            device=device,
            window_seconds=params.window_frames / prov.frame_rate,
            normalize=params.normalize,
            channels=prov.channels,
            trust_remote_code=params.trust_remote_code,
        )
        check_rebuilt(engine, prov)
        mine = engine.ssl_params()
        for name in ("architecture", "stride", "receptive"):
            if getattr(mine, name) != getattr(params, name):
                raise UserError(
                    f"the store records ssl parameter extraction.ssl.{name} = {getattr(params, name)!r}, but {prov.model} "
                    f"here has {getattr(mine, name)!r}: not the network the store was extracted with. Extract again."
                )
        if recorded and engine._revision != recorded:
            raise UserError(
                f"the store was extracted with {prov.model} at revision {recorded}, but the weights available here "
                f"are {engine._revision}; predictions would not match the features the model was trained on"
            )
        return engine

    @torch.inference_mode()
    def _forward(self, wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(wave).to(self.device)
        if self.normalize:  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm: population variance, 1e-7
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True, correction=0) + 1e-7)
        with torch.autocast(self.device.type, dtype=self._dtype, enabled=self._dtype is not None):
            hidden = self._net(x, output_hidden_states=True).hidden_states
        stacked = torch.stack([hidden[n] for n in self.layers], dim=1)  # (B, L, T, D)
        return stacked.to(getattr(torch, self.out_dtype)).cpu().numpy()

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return run_windowed(
            items, self._forward, geometry=self.geometry, window=self.window_frames, batch_size=self.batch_size
        )

    def weights(self) -> tuple[str | None, str | None]:
        return self.model, self._revision

    def ssl_params(self) -> SslParams:
        return SslParams(
            architecture=self._architecture,
            window_frames=self.window_frames,
            normalize=bool(self.normalize),
            precision="fp32" if self._dtype is None else str(self._dtype).removeprefix("torch."),
            stride=self.geometry.stride,
            receptive=self.geometry.receptive,
            trust_remote_code=self.trust_remote_code,
        )

    def parameters(self) -> dict:
        return {"ssl": asdict(self.ssl_params())}
