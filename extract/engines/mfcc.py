"""MFCC computed from audio (torchaudio): NNET2's input, 20 coefficients per frame, one "layer".

The recipe of Bonato, Menti and Saretto's NNET2 (their code: librosa at the file's native rate,
``mfcc(n_mfcc=20)`` of a 128-band mel power spectrogram, n_fft 2048, hop 1024): audio resampled to
44.1 kHz, the Slaney mel scale and filter norm (librosa's defaults), ``power_to_db`` floored 80 dB
under the track's maximum, then a DCT-II with orthonormal scaling. One frame every 1024 samples
(43.07 frames/s), centred on sample ``1024 t``: the frame grid of the ``wave`` store, so an NNET
window of 256 frames reads the same audio from both.

>>> engine = MfccEngine()
>>> engine.extract([np.zeros((1, 44100), np.float32)])[0].shape   # (channels, layers, frames, n_mfcc)
(1, 1, 44, 20)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mrnet.extract.engines.base import AudioInput, EngineBase, HopFrames, check_rebuilt, computes, stored_params


@dataclass(frozen=True)
class MfccParams:
    """Everything that fixes the coefficients; recorded in the store as ``extraction.mfcc``."""

    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 1024
    n_mels: int = 128
    n_mfcc: int = 20
    mel_scale: str = "slaney"
    norm: str = "slaney"
    top_db: float = 80.0
    dct: str = "II, ortho"


@computes("mfcc")
@dataclass
class MfccEngine(HopFrames, EngineBase, AudioInput):
    """``torchaudio.transforms.MFCC`` with NNET2's parameters, one track at a time."""

    params: MfccParams = field(default_factory=MfccParams)
    channels: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    feature: str = "mfcc"
    layers: list[int] = field(default_factory=lambda: [0], init=False)

    def __post_init__(self):
        import torchaudio

        p = self.params
        self._mfcc = torchaudio.transforms.MFCC(
            sample_rate=p.sample_rate,
            n_mfcc=p.n_mfcc,
            dct_type=2,
            norm="ortho",
            log_mels=False,
            melkwargs={
                "n_fft": p.n_fft,
                "hop_length": p.hop_length,
                "n_mels": p.n_mels,
                "mel_scale": p.mel_scale,
                "norm": p.norm,
                "power": 2.0,
                "center": True,
            },
        ).to(self.device)
        self._mfcc.amplitude_to_DB.top_db = p.top_db

    @property
    def dim(self) -> int:
        return self.params.n_mfcc

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> MfccEngine:
        return cls(channels=cfg.channels, device=device)

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> MfccEngine:
        engine = cls(params=stored_params(prov, "mfcc", MfccParams, what="MFCC"), channels=prov.channels, device=device)
        check_rebuilt(engine, prov)
        return engine

    @torch.inference_mode()
    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        shortest = self.params.n_fft // 2 + 1
        for wave in items:
            if wave.shape[-1] < shortest:
                raise ValueError(f"{wave.shape[-1]} samples is too short for one MFCC frame (at least {shortest})")
            coeffs = self._mfcc(torch.from_numpy(wave).to(self.device))  # (C, n_mfcc, T)
            out.append(coeffs.transpose(1, 2).unsqueeze(1).cpu().numpy())  # (C, 1, T, n_mfcc)
        return out

    def parameters(self) -> dict:
        return {"mfcc": asdict(self.params)}


#: samples in the NNET authors' window (2^18), whose MFCC their code computes on its own
NNET_WINDOW = 2**18


@dataclass(frozen=True)
class MfccWindowParams(MfccParams):
    """``MfccParams`` and the window (samples) each stretch of MFCC is computed and floored in."""

    window: int = NNET_WINDOW


@computes("mfcc-window")
@dataclass
class MfccWindowEngine(MfccEngine):
    """NNET2's MFCC as its authors compute them: each ``window``-sample stretch of the track on its own
    (``librosa.feature.mfcc`` of ``audio[s : s + 2^18]``, centre-padded at the stretch's edges), its dB
    floored 80 dB under that stretch's maximum, not the whole track's. The stretches tile the track from
    the stored frame at its midpoint both ways (frame ``stored // 2``: the start of ``--eval-unit
    middle``), so the test window, the authors' ``audio[len/2 : len/2 + 2^18]`` to the frame, is exactly
    one stretch; a training window elsewhere reads parts of two. Same frame grid and count as ``mfcc``.

    >>> engine = MfccWindowEngine()
    >>> engine.extract([np.zeros((1, 600_000), np.float32)])[0].shape, engine.pieces(586)   # 586 frames: from 293
    ((1, 1, 586, 20), [(0, 37), (37, 293), (293, 549), (549, 586)])
    """

    params: MfccWindowParams = field(default_factory=MfccWindowParams)
    feature: str = "mfcc-window"
    #: the store keeps one frame fewer than the MFCC has (``wave+mfcc-window``: whole 1024-sample frames only)
    trimmed: bool = False

    @property
    def window_frames(self) -> int:
        return self.params.window // self.params.hop_length

    def pieces(self, frames: int) -> list[tuple[int, int]]:
        """``(first, stop)`` frames of each stretch of a track of ``frames`` MFCC frames (``T + 1``)."""
        stored = frames - 1 if self.trimmed else frames
        size, anchor = self.window_frames, (stored // 2) % self.window_frames
        starts = ([0] if anchor else []) + list(range(anchor, frames, size))
        return list(zip(starts, starts[1:] + [frames]))

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> MfccWindowEngine:
        return cls(channels=cfg.channels, device=device)

    @classmethod
    def from_provenance(cls, prov, device: torch.device) -> MfccWindowEngine:
        engine = cls(
            params=stored_params(prov, "mfcc", MfccWindowParams, what="MFCC"), channels=prov.channels, device=device
        )
        check_rebuilt(engine, prov)
        return engine

    @torch.inference_mode()
    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        hop, shortest = self.params.hop_length, self.params.n_fft // 2 + 1
        out = []
        for wave in items:
            if wave.shape[-1] < shortest:
                raise ValueError(f"{wave.shape[-1]} samples is too short for one MFCC frame (at least {shortest})")
            frames = wave.shape[-1] // hop + 1
            parts = []
            for first, stop in self.pieces(frames):
                begin, end = first * hop, min(stop * hop, wave.shape[-1])
                extra = 0  # a stretch too short for the centre padding borrows whole frames before it
                while end - (begin - extra * hop) < shortest and begin - extra * hop > 0:
                    extra += 1
                audio = torch.from_numpy(np.ascontiguousarray(wave[..., begin - extra * hop : end])).to(self.device)
                coeffs = self._mfcc(audio)[..., extra : extra + stop - first]  # (C, n_mfcc, frames of the stretch)
                parts.append(coeffs)
            out.append(torch.cat(parts, dim=-1).transpose(1, 2).unsqueeze(1).cpu().numpy())  # (C, 1, T, n_mfcc)
        return out
