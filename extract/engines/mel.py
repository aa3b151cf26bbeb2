"""Log-Mel spectrograms computed from audio (torchaudio): one "layer" of ``n_mels`` values per frame.

Three profiles, each a ``--features`` name:

=======  ========  =====  ====  ======  ================================  ==========================
name     rate      n_fft  hop   n_mels  scale, log                        for
=======  ========  =====  ====  ======  ================================  ==========================
mel      16 kHz    512    256   48      HTK, 10 log10(power)              MRNet; Melon's own profile
mel128   22.05kHz  2048   256   128     Slaney, power_to_db (top 80 dB)   MusicNeXt (librosa defaults)
mel96    12 kHz    512    256   96      Slaney, power_to_db (top 80 dB)   FCN-5, MsE-CNN (Choi et al.)
=======  ========  =====  ====  ======  ================================  ==========================

``mel`` keeps the parameters of the Mel spectrograms the Melon Playlist Dataset ships (16 kHz, frame
512, hop 256, 48 bands), so a model trained on Melon can be compared with one trained on any other
dataset's audio. ``top_db`` floors a track's values at its own maximum minus 80 dB, as librosa's
``power_to_db`` does over whatever it is given (here the whole track).

>>> engine = MelEngine()
>>> engine.extract([np.zeros((1, 16000), np.float32)])[0].shape   # (channels, layers, frames, n_mels)
(1, 1, 63, 48)
>>> MelEngine(feature="mel128", params=PROFILES["mel128"]).frame_rate
86.1328125
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from mrnet.core.errors import UserError
from mrnet.extract.engines.base import AudioInput, EngineBase, HopFrames, check_rebuilt, computes, stored_params


@dataclass(frozen=True)
class MelParams:
    """Everything that fixes a log-Mel spectrogram; recorded in the store as ``extraction.mel``."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 512
    hop_length: int = 256
    n_mels: int = 48
    log: str = "10*log10(max(power, 1e-10))"
    mel_scale: str = "htk"  # htk | slaney
    norm: str | None = None  # None | slaney (each filter's area normalised, librosa's default)
    f_min: float = 0.0
    f_max: float | None = None  # None: half the sample rate
    top_db: float | None = None  # floor at the track's maximum minus this many dB

    def record(self) -> dict:
        """What the store records: the first six fields always, the others where they differ from the
        defaults (so stores written before they existed read back as the same parameters)."""
        first = [f.name for f in fields(self)][:6]
        return {k: v for k, v in asdict(self).items() if k in first or v != MelParams.__dataclass_fields__[k].default}


#: The ``--features`` names this engine computes, and their parameters.
PROFILES = {
    "mel": MelParams(),
    "mel128": MelParams(
        sample_rate=22050,
        n_fft=2048,
        win_length=2048,
        hop_length=256,
        n_mels=128,
        mel_scale="slaney",
        norm="slaney",
        top_db=80.0,
    ),
    "mel96": MelParams(
        sample_rate=12000,
        n_fft=512,
        win_length=512,
        hop_length=256,
        n_mels=96,
        mel_scale="slaney",
        norm="slaney",
        top_db=80.0,
    ),
}


@computes(*PROFILES)
@dataclass
class MelEngine(HopFrames, EngineBase, AudioInput):
    """Power Mel spectrogram, then ``log``; frames are local, so tracks need no batching care."""

    params: MelParams = field(default_factory=MelParams)
    channels: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    feature: str = "mel"
    layers: list[int] = field(default_factory=lambda: [0], init=False)

    def __post_init__(self):
        import torchaudio

        p = self.params
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=p.sample_rate,
            n_fft=p.n_fft,
            win_length=p.win_length,
            hop_length=p.hop_length,
            n_mels=p.n_mels,
            power=2.0,
            mel_scale=p.mel_scale,
            norm=p.norm,
            f_min=p.f_min,
            f_max=p.f_max,
        ).to(self.device)

    @property
    def dim(self) -> int:
        return self.params.n_mels

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> MelEngine:
        return cls(feature=cfg.features, params=PROFILES[cfg.features], channels=cfg.channels, device=device)

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> MelEngine:
        """The engine a store was written with, from the parameters it recorded (none recorded: the profile's)."""
        stored = prov.extraction.get("mel")
        if isinstance(stored, dict) and "source" in stored:
            raise UserError(
                f"the store's Mel spectrograms ({stored}) were not computed by mrnet from audio (Melon ships its own), "
                "so they cannot be made again for new files"
            )
        if stored is None:
            params = PROFILES[prov.feature]
        else:
            params = stored_params(prov, "mel", MelParams, what="Mel spectrogram")
        engine = cls(feature=prov.feature, params=params, channels=prov.channels, device=device)
        check_rebuilt(engine, prov)
        return engine

    @torch.inference_mode()
    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        shortest = self.params.n_fft // 2 + 1  # the centred STFT reflects n_fft // 2 samples at each end
        for wave in items:  # frame-local features: one track at a time
            if wave.shape[-1] < shortest:
                raise ValueError(
                    f"{wave.shape[-1]} samples is too short for one Mel frame (at least {shortest}, "
                    f"{shortest / self.sample_rate * 1000:.0f} ms)"
                )
            power = self._mel(torch.from_numpy(wave).to(self.device))  # (C, n_mels, T)
            logmel = 10.0 * torch.log10(power.clamp_min(1e-10))
            if self.params.top_db is not None:
                logmel = torch.maximum(logmel, logmel.amax(dim=(-2, -1), keepdim=True) - self.params.top_db)
            out.append(logmel.transpose(1, 2).unsqueeze(1).cpu().numpy())  # (C, 1, T, n_mels)
        return out

    def parameters(self) -> dict:
        return {"mel": self.params.record()}
