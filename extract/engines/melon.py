"""The Melon Playlist Dataset's Mel spectrograms, taken as shipped: the dataset has no audio.

Each song is one ``.npy`` array ``(48, frames)`` of log-Mel values (16 kHz audio, frame 512, hop
256, 48 bands, the 20-50 s segment). ``load`` reads and checks it and ``extract`` reshapes it to the
store's ``(channels, layers, frames, dim)``; nothing is computed. How the arrays were computed
(librosa or another library, which log) is not published, so ``mrnet-predict`` cannot make the same
features from audio and refuses runs trained on them.

>>> engine = MelonEngine()
>>> engine.extract([np.zeros((48, 10), np.float32)])[0].shape
(1, 1, 10, 48)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrnet.extract.audio import AudioError, require_regular
from mrnet.extract.engines.base import EngineBase, SourceInfo, ships

#: What the dataset documents about its arrays; recorded in the store as ``extraction.mel``.
SAMPLE_RATE, HOP_LENGTH, N_MELS = 16000, 256, 48
MELON_MEL = {
    "source": "Melon Playlist Dataset arena_mel, as shipped",
    "sample_rate": SAMPLE_RATE,
    "n_fft": 512,
    "hop_length": HOP_LENGTH,
    "n_mels": N_MELS,
}


@ships("melon")
class MelonEngine(EngineBase):
    """Shipped ``(48, frames)`` arrays in, ``(1, 1, frames, 48)`` features out."""

    feature = "mel"
    layers = [0]
    dim = N_MELS
    channels = 1
    sample_rate = SAMPLE_RATE
    frame_rate = SAMPLE_RATE / HOP_LENGTH

    def load(self, path: Path) -> tuple[np.ndarray, SourceInfo]:
        require_regular(path)
        try:
            mel = np.load(path)
        except (OSError, ValueError) as err:
            raise AudioError(f"{path}: cannot read it as a NumPy array ({err})") from err
        if mel.ndim != 2 or mel.shape[0] != self.dim or mel.shape[1] == 0:
            raise AudioError(f"{path}: expected a ({self.dim}, frames) array, found shape {mel.shape}")
        return mel, SourceInfo(mel.shape[1] / self.frame_rate, self.sample_rate, 1)

    def probe(self, path: Path) -> float:
        require_regular(path)
        return np.load(path, mmap_mode="r").shape[1] / self.frame_rate

    def seconds(self, item: np.ndarray) -> float:
        return 0.0  # arrays pass through: nothing is computed, so they need no memory budget

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return [np.ascontiguousarray(mel.T[None, None], dtype=np.float32) for mel in items]  # (1, 1, T, 48)

    def parameters(self) -> dict:
        return {"mel": dict(MELON_MEL)}
