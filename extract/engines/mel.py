"""Log-Mel spectrograms computed from audio (torchaudio): one "layer" of ``n_mels`` values per frame.

The default parameters are those of the Mel spectrograms the Melon Playlist Dataset ships (16 kHz,
frame 512, hop 256, 48 bands), so a model trained on Melon can be compared with one trained on any
other dataset's audio.

>>> engine = MelEngine()
>>> engine.extract([np.zeros((1, 16000), np.float32)])[0].shape   # (channels, layers, frames, n_mels)
(1, 1, 63, 48)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.extract.engines.base import AudioInput


@dataclass(frozen=True)
class MelParams:
    """Everything that fixes a log-Mel spectrogram; recorded in the store as ``extraction.mel``."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 512
    hop_length: int = 256
    n_mels: int = 48
    log: str = "10*log10(max(power, 1e-10))"


@dataclass
class MelEngine(AudioInput):
    """Power Mel spectrogram, then ``log``; frames are local, so tracks need no batching care."""

    params: MelParams = field(default_factory=MelParams)
    channels: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    feature: str = "mel"

    def __post_init__(self):
        import torchaudio

        p = self.params
        self.layers = [0]
        self.dim = p.n_mels
        self.sample_rate = p.sample_rate
        self.frame_rate = p.sample_rate / p.hop_length
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=p.sample_rate, n_fft=p.n_fft, win_length=p.win_length, hop_length=p.hop_length, n_mels=p.n_mels, power=2.0,
        ).to(self.device)

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> "MelEngine":
        return cls(channels=cfg.channels, device=device)

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> "MelEngine":
        """The engine a store was written with, from the parameters it recorded (none recorded: the defaults)."""
        stored = prov.extraction.get("mel") or asdict(MelParams())
        known = set(MelParams.__dataclass_fields__)
        if not isinstance(stored, dict) or not set(stored) <= known:
            raise UserError(
                f"the store's Mel spectrograms ({stored}) were not computed by mrnet from audio (Melon ships its own), "
                "so they cannot be made again for new files"
            )
        return cls(params=MelParams(**stored), channels=prov.channels, device=device)

    @torch.inference_mode()
    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        shortest = self.params.n_fft // 2 + 1  # the centred STFT reflects n_fft // 2 samples at each end
        for wave in items:  # frame-local features: one track at a time
            if wave.shape[-1] < shortest:
                raise ValueError(f"{wave.shape[-1]} samples is too short for one Mel frame (at least {shortest}, "
                                 f"{shortest / self.sample_rate * 1000:.0f} ms)")
            power = self._mel(torch.from_numpy(wave).to(self.device))  # (C, n_mels, T)
            logmel = 10.0 * torch.log10(power.clamp_min(1e-10))
            out.append(logmel.transpose(1, 2).unsqueeze(1).cpu().numpy())  # (C, 1, T, n_mels)
        return out

    def describe(self) -> dict:
        return {"model": None, "model_revision": None, "extraction": {"mel": asdict(self.params)}}
