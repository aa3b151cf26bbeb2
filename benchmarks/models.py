"""The models the benchmarks extract with: WavLM-base with random weights, and a stub that costs nothing.

**WavLM-base, random weights.** No weights can be downloaded here, and throughput does not depend
on weight values: ``transformers.WavLMConfig()``'s defaults are WavLM-base's architecture (12
layers, 768 wide, the same convolutional front end), so a randomly initialised model with a fixed
seed, written with ``save_pretrained``, stands in for ``microsoft/wavlm-base`` and is passed as
``--model``. ``engine`` builds the engine ``mrnet-extract`` would build from such settings.

**The stub engine.** ``StubEngine`` is that WavLM engine with the model's forward replaced by random
features of the right shape and dtype, returned at once. Everything else is the real engine:
loading (decode, resample), windowing and stitching, ``describe``. Extracting with it measures the
pipeline's own ceiling: the most audio per second any model, however fast, can get through
``mrnet-extract`` on this machine. ``register_stub`` adds it to ``mrnet.extract.engines.FEATURES`` as
``stub``, so ``pipeline.run`` builds it like any engine (``features="stub"``); call it only in a
benchmark's own child process.
"""

from __future__ import annotations

import shutil

import numpy as np

from benchmarks.common import CACHE, log
from mrnet.extract import engines
from mrnet.extract.engines import WavLMEngine
from mrnet.extract.windows import run_windowed

WAVLM_SEED = 0
STUB = "stub"  # the --features name the stub engine is registered under


def wavlm_base_random() -> str:
    """A WavLM-base-shaped model (``WavLMConfig()`` defaults), seeded random weights, saved locally."""
    path = CACHE / "wavlm-base-random"
    if not (path / "config.json").exists():
        import torch
        from transformers import WavLMConfig, WavLMModel

        log(f"creating a random WavLM-base in {path}")
        torch.manual_seed(WAVLM_SEED)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        WavLMModel(WavLMConfig()).eval().save_pretrained(tmp)
        tmp.rename(path)
    return str(path)


def engine(features: str = "wavlm", *, device: str | None = None, **settings):
    """The engine ``mrnet-extract`` builds for a folder of audio with these ``ExtractConfig`` settings,
    on ``device`` (None: CUDA when present)."""
    from mrnet.extract.config import ExtractConfig

    return engines.engine_for_run(
        ExtractConfig(dataset="folder", features=features, **settings), engines.AUDIO, device=device
    )


def register_stub() -> type:
    """Register :class:`StubEngine` as ``features="stub"`` in this process; returns the class."""
    engines.FEATURES[STUB] = StubEngine
    return StubEngine


class StubEngine(WavLMEngine):
    """``WavLMEngine`` whose model returns random features at once: ``(B, layers, frames, dim)`` per
    batch of windows, in ``out_dtype``. Random, not zeros: zeros would flatter any compressing codec."""

    def __post_init__(self):
        super().__post_init__()
        rng = np.random.default_rng(0)
        self.block = rng.standard_normal((1, 1, self.window_frames, self.dim), dtype=np.float32)  # cut to each window

    def extract(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return run_windowed(
            items, self.stub_forward, geometry=self.geometry, window=self.window_frames, batch_size=self.batch_size
        )

    def stub_forward(self, wave: np.ndarray) -> np.ndarray:
        """What the model's forward returns for a batch of windows ``(B, samples)``, without the model."""
        frames = self.geometry.frames(wave.shape[1])
        block = self.block[:, :, :frames].astype(self.out_dtype)
        return np.broadcast_to(block, (wave.shape[0], len(self.layers), frames, self.dim))
