"""WavLM hidden states through ``transformers``: 13 layers of 768 values at 50 frames/s for WavLM-base.

The encoder engine (:mod:`.encoder`) with WavLM's parameters fixed: the network loads through
``WavLMModel.from_pretrained``, from the hub (``microsoft/wavlm-base``) or a local directory; the input
is 16 kHz; per-window normalisation divides by the sample variance; the store records the window,
normalisation, precision and frame geometry as flat ``extraction`` keys (every wavlm store written so
far holds them so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from mrnet.core.errors import UserError
from mrnet.extract.audio import SAMPLE_RATE
from mrnet.extract.engines import hub
from mrnet.extract.engines.base import computes
from mrnet.extract.engines.encoder import DEFAULT_MODEL, EncoderEngine, feature_extractor


@computes("wavlm")
@dataclass
class WavLMEngine(EncoderEngine):
    """Frozen WavLM (``microsoft/wavlm-base``, ``microsoft/wavlm-base-plus`` or a local directory)
    returning the selected hidden states."""

    VARIANCE_CORRECTION: ClassVar[int] = 1  # what every wavlm store was written with (Wav2Vec2's own is 0)

    feature: str = "wavlm"

    def _load(self, local_only: bool) -> tuple[Any, Any]:
        from transformers import WavLMModel

        options: dict[str, Any] = {"revision": self.revision, "local_files_only": local_only}
        try:
            net = WavLMModel.from_pretrained(self.model, **options)
        except Exception as err:  # noqa: BLE001 - missing, unreachable, truncated or foreign weights all land here
            raise hub.unavailable(
                self.model, err, offline=local_only, what="WavLM weights", example=DEFAULT_MODEL
            ) from err
        # the feature extractor only says whether to normalise, so it is read only when --normalize is not given
        return net, feature_extractor(self.model, **options) if self.normalize is None else None

    def _input_rate(self, extractor: Any) -> int:
        return SAMPLE_RATE  # WavLM's input rate

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> WavLMEngine:
        """The engine a store was written with, for new files; refuses other weights than the store's."""
        if not prov.model:
            raise UserError("the store records WavLM features but no model; it cannot be reproduced")
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
        engine = cls._rebuild(prov, device, window_frames=frames, normalize=normalize)
        geometry = prov.extraction.get("geometry")
        mine = {"stride": engine.geometry.stride, "receptive": engine.geometry.receptive}
        if geometry is not None and geometry != mine:
            raise UserError(
                f"the store records WavLM parameter extraction.geometry = {geometry}, but {prov.model} here has "
                f"{mine}: not the network the store was extracted with. Use the store's weights, or extract again."
            )
        engine._check_weights(prov)
        return engine

    def parameters(self) -> dict:
        return {
            "window_frames": self.window_frames,
            "normalize": bool(self.normalize),
            "precision": self.precision_used,
            "geometry": {"stride": self.geometry.stride, "receptive": self.geometry.receptive},
        }
