"""A length the header declares and the file does not hold is warned of, for every format that declares
one (issue 21, item 8): libsndfile trims a WAV's or AU's data size to the bytes present, so a cut file,
or one declaring 18 h over 1 s of samples, was stored as done with no word."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from mrnet.extract import audio
from mrnet.store import FeatureStore
from tests.extract.test_errors import extract
from tests.extract.test_walk import _wav


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("fmt", ["WAV", "AU"])
def test_a_wav_or_au_cut_short_is_kept_with_a_warning(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, np.full((4 * 22050, 2), 0.1, np.float32), 22050, format=fmt, subtype="PCM_16")
    _cut(path, 0.25)
    _, info = audio.load_with_info(path)
    assert info.shortfall is not None and "of the 4.0 s the file declares" in info.shortfall, info


def test_a_wav_whose_header_declares_18_hours_over_one_second_is_warned_in_the_store(tmp_path):
    import struct

    root = tmp_path / "music"
    for genre in ("rock", "jazz"):
        for i in range(2):
            _wav(root / genre / f"{genre}{i}.wav", seconds=1.0, freq=300.0 * (i + 1))
    path = root / "rock" / "long.wav"
    sf.write(path, np.full(16000, 0.1, np.float32), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 16000 * 2 * 3600 * 18)  # 18 h of 16-bit mono at 16 kHz
    path.write_bytes(bytes(data))
    out = tmp_path / "s.zarr"
    result = extract(tmp_path, "--out", out, "--manifests-dir", tmp_path / "m", root=root)
    assert result.exit_code == 0, result.output
    row = FeatureStore.open(out).tracks.filter(pl.col("path") == "rock/long.wav").row(0, named=True)
    assert row["status"] == "done" and row["warning"] == "decoded 1.0 s of the 64800.0 s the file declares (cut short?)"
    assert FeatureStore.open(out).tracks["warning"].null_count() == 4
