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
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from mrnet.core.errors import UserError
from mrnet.extract.engines import hub
from mrnet.extract.engines.base import computes, stored_params
from mrnet.extract.engines.encoder import DEFAULT_MODEL, EncoderEngine, feature_extractor

log = logging.getLogger("mrnet.extract.engines.ssl")
FALLBACK_RATE = 16000  # the rate of every wav2vec 2.0-family model, for a model that ships no feature extractor


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
class SslEngine(EncoderEngine):
    """A frozen transformers audio encoder (eval mode, no gradients) returning the selected hidden states."""

    DIGEST_FILES: ClassVar[tuple[str, ...]] = (".json", ".safetensors", ".bin", ".py")  # weights, config and code
    VARIANCE_CORRECTION: ClassVar[int] = 0  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm: population variance

    trust_remote_code: bool = False
    feature: str = "ssl"

    def _load(self, local_only: bool) -> tuple[Any, Any]:
        from transformers import AutoModel

        self._check_remote_code(local_only)
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
        return net, feature_extractor(self.model, **options)

    def _input_rate(self, extractor: Any) -> int:
        if extractor is None:
            log.warning("%s ships no feature extractor: taking %d Hz input, not normalised", self.model, FALLBACK_RATE)
        return int(getattr(extractor, "sampling_rate", None) or FALLBACK_RATE)

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

    @classmethod
    def _options(cls, cfg: Any) -> dict[str, Any]:
        return {"trust_remote_code": cfg.trust_remote_code}

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> SslEngine:
        """The engine a store was written with; its weights (and any code they bring) only at the recorded revision."""
        if not prov.model:
            raise UserError("the store records ssl features but no model; they cannot be made again for new files")
        params = stored_params(prov, "ssl", SslParams, what="ssl")
        recorded = prov.model_revision or ""
        if recorded.startswith("local:"):
            here = hub.local_digest(prov.model, cls.DIGEST_FILES)
            if (
                here != recorded
            ):  # checked before loading: remote code runs only if it is the code the store was made with
                raise UserError(
                    f"the store was extracted with {prov.model} at {recorded}, but the folder here is "
                    f"{here or 'missing'}; predictions would not match. Use the store's model folder, or extract again."
                )
        engine = cls._rebuild(
            prov,
            device,
            window_frames=params.window_frames,
            normalize=params.normalize,
            trust_remote_code=params.trust_remote_code,
        )
        mine = engine.ssl_params()
        for name in ("architecture", "stride", "receptive"):
            if getattr(mine, name) != getattr(params, name):
                raise UserError(
                    f"the store records ssl parameter extraction.ssl.{name} = {getattr(params, name)!r}, but {prov.model} "
                    f"here has {getattr(mine, name)!r}: not the network the store was extracted with. Extract again."
                )
        engine._check_weights(prov)
        return engine

    def ssl_params(self) -> SslParams:
        return SslParams(
            architecture=str(self._net.config.model_type),
            window_frames=self.window_frames,
            normalize=bool(self.normalize),
            precision=self.precision_used,
            stride=self.geometry.stride,
            receptive=self.geometry.receptive,
            trust_remote_code=self.trust_remote_code,
        )

    def parameters(self) -> dict:
        return {"ssl": asdict(self.ssl_params())}
