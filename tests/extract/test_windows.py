import numpy as np
import pytest

from mrnet.extract.windows import Geometry, plan, run_windowed, stitch

WAVLM = Geometry.from_convs([10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2])


def test_wavlm_geometry_matches_the_paper_frame_rate():
    assert (WAVLM.stride, WAVLM.receptive) == (320, 400)
    assert WAVLM.frames(16000 * 30) == 1499  # what transformers computes for a 30 s clip
    assert WAVLM.frames(399) == 0 and WAVLM.frames(400) == 1
    assert WAVLM.samples(WAVLM.frames(123456)) <= 123456 < WAVLM.samples(WAVLM.frames(123456) + 1)


@pytest.mark.parametrize("frames,window", [(1, 5), (5, 5), (6, 5), (10, 5), (11, 5), (1234, 100)])
def test_plan_covers_every_frame_with_full_windows(frames, window):
    starts = plan(frames, window=window)
    covered = np.zeros(frames, bool)
    for s in starts:
        assert 0 <= s and s + min(window, frames) <= frames
        covered[s : s + min(window, frames)] = True
    assert covered.all()
    assert len(starts) == max(1, -(-frames // window))


def fake_forward(wave: np.ndarray) -> np.ndarray:
    """Frame f of a window = the window's first sample index encoded in the audio (a ramp), per frame."""
    frames = WAVLM.frames(wave.shape[1])
    out = wave[:, ::320][:, :frames]  # sample at each frame's start
    return out[:, None, :, None].astype(np.float32)  # (B, 1, T, 1)


def test_windowed_frames_land_on_the_global_frame_grid():
    n = 16000 * 7 + 77
    ramp = np.arange(n, dtype=np.float64)[None]  # sample index as the signal
    (feats,) = run_windowed([ramp], fake_forward, geometry=WAVLM, window=100, batch_size=3)
    frames = WAVLM.frames(n)
    assert feats.shape == (1, 1, frames, 1)
    assert np.array_equal(feats[0, 0, :, 0], np.arange(frames) * 320.0)


def test_stitch_refuses_a_gap():
    with pytest.raises(ValueError, match="uncovered"):
        stitch([(0, np.zeros((1, 4, 1))), (6, np.zeros((1, 4, 1)))], 10)
