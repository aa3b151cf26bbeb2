"""Waveform and MFCC of the same frames in one store: MixNet's two inputs, read with one crop offset.

MixNet (Bonato, Menti and Saretto) reads a 2^18-sample window of raw audio and the MFCC of the same
window. Both kinds here share the 1024-sample frame grid at 44.1 kHz (``wave``: frame ``t`` holds
samples ``1024 t ... 1024 t + 1023``; ``mfcc``: frame ``t`` is centred on sample ``1024 t``), so each
stored frame is the 1024 samples followed by the 20 coefficients, ``(channels, 1, frames, 1044)``, and
any crop gives both of one window. One store rather than two joined by track id: one manifest, one
checksum per track, and no way for the two halves of a pair to come from different extractions. NNET1
and NNET2 read their half of such a store too.

>>> engine = WaveMfccEngine()
>>> engine.extract([np.zeros((1, 44100), np.float32)])[0].shape
(1, 1, 43, 1044)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.extract.engines.base import AudioInput, EngineBase, check_rebuilt, computes, stored_params
from mrnet.extract.engines.mfcc import MfccEngine, MfccParams, MfccWindowEngine, MfccWindowParams
from mrnet.extract.engines.wave import WaveEngine, WaveParams


@computes("wave+mfcc")
@dataclass
class WaveMfccEngine(EngineBase, AudioInput):
    """``wave`` and ``mfcc`` side by side on each frame (their rates and frame grids must agree)."""

    wave: WaveParams = field(default_factory=WaveParams)
    mfcc: MfccParams = field(default_factory=MfccParams)
    channels: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    feature: str = "wave+mfcc"
    layers: list[int] = field(default_factory=lambda: [0], init=False)
    MFCC_PARAMS = MfccParams  # what extraction.mfcc of its store holds

    def __post_init__(self):
        if (self.wave.sample_rate, self.wave.frame) != (self.mfcc.sample_rate, self.mfcc.hop_length):
            raise ValueError(f"wave {self.wave} and mfcc {self.mfcc} are not on one frame grid")
        self._wave = WaveEngine(self.wave, self.channels, self.device)
        self._mfcc = self._mfcc_engine()

    def _mfcc_engine(self) -> MfccEngine:
        return MfccEngine(self.mfcc, self.channels, self.device)

    @property
    def dim(self) -> int:
        return self.wave.frame + self.mfcc.n_mfcc

    @property
    def sample_rate(self) -> int:
        return self.wave.sample_rate

    @property
    def frame_rate(self) -> float:
        return self._wave.frame_rate

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> WaveMfccEngine:
        return cls(channels=cfg.channels, device=device)

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> WaveMfccEngine:
        wave, mfcc = (
            stored_params(prov, "wave", WaveParams, what="waveform"),
            stored_params(prov, "mfcc", cls.MFCC_PARAMS, what="MFCC"),
        )
        try:
            engine = cls(wave, mfcc, channels=prov.channels, device=device)
        except ValueError as err:
            raise UserError(
                f"the store records extraction.wave and extraction.mfcc that do not share one frame grid ({err}), "
                "so its features cannot be made again for new files; extract the training data again"
            ) from err
        check_rebuilt(engine, prov)
        return engine

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for w, m in zip(self._wave.extract(items), self._mfcc.extract(items)):
            frames = w.shape[2]  # whole 1024-sample frames; the MFCC has one more (centred frames reach the end)
            out.append(np.concatenate([w, m[:, :, :frames]], axis=3))  # (C, 1, T, 1024 + 20)
        return out

    def parameters(self) -> dict:
        return {**self._wave.parameters(), **self._mfcc.parameters()}


@computes("wave+mfcc-window")
@dataclass
class WaveMfccWindowEngine(WaveMfccEngine):
    """``wave`` and ``mfcc-window`` side by side: MixNet's inputs with the MFCC as its authors compute
    them, per 2^18-sample window floored at the window's maximum (``mfcc.MfccWindowEngine``), the
    windows tiled from the stored frame at the track's midpoint."""

    mfcc: MfccWindowParams = field(default_factory=MfccWindowParams)
    feature: str = "wave+mfcc-window"
    MFCC_PARAMS = MfccWindowParams

    def _mfcc_engine(self) -> MfccEngine:
        return MfccWindowEngine(self.mfcc, self.channels, self.device, trimmed=True)
