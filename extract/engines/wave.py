"""The raw waveform, stored as frames of consecutive samples: NNET1's and MixNet's input.

Audio is resampled to 44.1 kHz (NNET1's authors load FMA at its native rate, mostly 44.1 kHz, and
cut windows of 2^18 samples; one rate makes every window 5.94 s) and cut into frames of 1024 samples,
``(channels, 1, frames, 1024)``, 43.07 frames/s, the samples after the last whole frame dropped (under
23 ms). A 2^18-sample window is 256 frames, so crops, the loader and the store's chunking work on
waveforms as on any frame feature. Stored as float16 by default (``--dtype``): 2 bytes a sample like
16-bit PCM, with a relative precision of 2^-11 (about 66 dB below each sample's own level, where
16-bit PCM has a fixed step 96 dB under full scale), 176 kB per second of mono audio.

>>> engine = WaveEngine()
>>> x = np.arange(3000, dtype=np.float32)[None]
>>> frames = engine.extract([x])[0]
>>> frames.shape, float(frames[0, 0, 1, 0])                # (channels, layers, frames, samples per frame)
((1, 1, 2, 1024), 1024.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mrnet.extract.engines.base import AudioInput, EngineBase, check_rebuilt, computes, stored_params


@dataclass(frozen=True)
class WaveParams:
    """The waveform's rate and frame length; recorded in the store as ``extraction.wave``."""

    sample_rate: int = 44100
    frame: int = 1024  # samples per stored frame


@computes("wave")
@dataclass
class WaveEngine(EngineBase, AudioInput):
    """Resampled audio reshaped into frames; nothing is computed."""

    params: WaveParams = field(default_factory=WaveParams)
    channels: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    feature: str = "wave"
    layers: list[int] = field(default_factory=lambda: [0], init=False)

    @property
    def dim(self) -> int:
        return self.params.frame

    @property
    def sample_rate(self) -> int:
        return self.params.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.params.sample_rate / self.params.frame

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> WaveEngine:
        return cls(channels=cfg.channels, device=device)

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> WaveEngine:
        engine = cls(
            params=stored_params(prov, "wave", WaveParams, what="waveform"), channels=prov.channels, device=device
        )
        check_rebuilt(engine, prov)
        return engine

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for wave in items:
            frames = wave.shape[-1] // self.params.frame
            if frames < 1:
                raise ValueError(f"{wave.shape[-1]} samples is too short for one frame of {self.params.frame}")
            x = wave[:, : frames * self.params.frame].reshape(wave.shape[0], frames, self.params.frame)  # (C, T, frame)
            out.append(np.ascontiguousarray(x[:, None], dtype=np.float32))  # (C, 1, T, frame)
        return out

    def parameters(self) -> dict:
        return {"wave": asdict(self.params)}
