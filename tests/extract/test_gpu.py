"""GPU paths; run with `pytest -m gpu` on a machine with CUDA (skipped elsewhere)."""

import numpy as np
import pytest
import torch

from mrnet.extract.engines import WavLMEngine

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batched_equals_one_track_at_a_time_on_gpu(tiny_wavlm, precision):
    rng = np.random.default_rng(0)
    tracks = [(0.1 * rng.normal(size=(1, n))).astype(np.float32) for n in (20000, 20000, 16000 * 5 + 123, 7000)]
    one = WavLMEngine(
        model=tiny_wavlm, batch_size=1, window_seconds=2.0, device=torch.device("cuda"), precision=precision
    )
    many = WavLMEngine(
        model=tiny_wavlm, batch_size=8, window_seconds=2.0, device=torch.device("cuda"), precision=precision
    )
    tol = 1e-5 if precision == "fp32" else 2e-2  # bf16 kernels may pick other tilings per batch size
    for a, b in zip([one.extract([t])[0] for t in tracks], many.extract(tracks)):
        assert np.abs(a - b).max() <= tol * np.abs(a).max()
