"""Decoding and resampling: any file libsndfile reads (MP3, OGG, FLAC, WAV, AU...) to 16 kHz float32.

Both libraries release the GIL, so several threads decode in parallel while the model runs.

>>> import numpy as np, soundfile as sf, tempfile
>>> path = tempfile.mktemp(suffix=".wav")
>>> sf.write(path, np.zeros((44100, 2), np.float32), 44100)
>>> wave, info = load_with_info(path, channels=2)
>>> wave.shape, load_with_info(path, channels=1)[0].shape, info.sample_rate, info.channels
((2, 16000), (1, 16000), 44100, 2)
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mrnet.extract import rows
from mrnet.extract.headers import declared_frames

SAMPLE_RATE = 16000


class AudioError(Exception):
    """A file that cannot be turned into audio; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    duration: float  # seconds decoded (probe: as the header declares)
    sample_rate: int
    channels: int
    declared: float | None = None  # seconds the file's header declares, when it says

    @property
    def shortfall(self) -> str | None:
        """Why the decoded audio is suspect: far shorter (over 5 % and 0.5 s) than the file declares, as
        a file cut short in a download or a copy is; None otherwise.

        >>> AudioInfo(2.4, 44100, 2, declared=5.0).shortfall
        'decoded 2.4 s of the 5.0 s the file declares (cut short?)'
        >>> AudioInfo(29.95, 44100, 2, declared=30.0).shortfall is None
        True
        """
        if self.declared is None or self.declared - self.duration <= max(0.5, 0.05 * self.declared):
            return None
        return f"decoded {self.duration:.1f} s of the {self.declared:.1f} s the file declares (cut short?)"


def require_regular(path: Path | str) -> None:
    """``AudioError`` unless ``path`` is a regular file (after links): opening a FIFO named ``x.wav``
    waits forever for a writer, a device reads without end.

    >>> try:
    ...     require_regular("/dev/null")
    ... except AudioError as err:
    ...     print(err)
    /dev/null: not a regular file (a character device); only regular files are read
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise AudioError(
            f"{path}: {'file not found' if isinstance(err, FileNotFoundError) else f'cannot read it ({err.strerror or err})'}"
        ) from err
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a character device"
            if stat.S_ISCHR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "not a file"
        )
        raise AudioError(f"{path}: not a regular file ({kind}); only regular files are read")


def probe(path: Path) -> AudioInfo:
    """Duration, rate and channels from the file header (no full decode)."""
    if rows.is_row(path):
        return _probe_row(path)
    require_regular(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(f"{path}: cannot read audio header ({err})") from err
    return AudioInfo(float(info.duration), int(info.samplerate), int(info.channels))


def decode(path: Path) -> tuple[np.ndarray, int, int]:
    """The file's samples ``(channels, samples)`` float32 at its own rate, and the sample count its
    header declares (an MP3's Xing/LAME header, a WAV's or AU's data size as written: see
    :mod:`.headers`; libsndfile's estimate otherwise)."""
    require_regular(path)
    try:
        with sf.SoundFile(str(path)) as f:
            rate, declared = f.samplerate, f.frames
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        if not Path(path).is_file():
            raise AudioError(f"{path}: file not found") from err
        size = Path(path).stat().st_size
        reason = "empty file" if size == 0 else f"not a readable audio file or corrupt ({size:,} bytes)"
        detail = str(getattr(err, "error_string", "") or err)
        raise AudioError(f"{path}: cannot decode: {reason} [libsndfile: {detail}]") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples")
    try:
        declared = max(declared, declared_frames(path) or 0)  # libsndfile trims a WAV or AU header to the bytes present
    except OSError:
        pass
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    return np.ascontiguousarray(data.T), int(rate), int(declared)


def _probe_row(path: Path) -> AudioInfo:
    """:func:`probe` for audio held in a dataset row (``file.arrow#17``: :mod:`.rows`)."""
    try:
        info = sf.info(_row_bytes(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: cannot read the row's audio header ({err})") from err
    return AudioInfo(float(info.duration), int(info.samplerate), int(info.channels))


def _decode_row(path: Path) -> tuple[np.ndarray, int, int]:
    """:func:`decode` for audio held in a dataset row: its encoded bytes, decoded in memory."""
    try:
        with sf.SoundFile(_row_bytes(path)) as f:
            rate, declared = f.samplerate, f.frames
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError(
            f"{path}: cannot decode the row's audio bytes [libsndfile: {getattr(err, 'error_string', '') or err}]"
        ) from err
    if data.shape[0] == 0 or not np.isfinite(data).all():
        raise AudioError(
            f"{path}: {'contains no audio samples' if data.shape[0] == 0 else 'decoded samples contain NaN or infinity'}"
        )
    return np.ascontiguousarray(data.T), int(rate), int(declared)


def _row_bytes(path: Path) -> io.BytesIO:
    try:
        return rows.open_row(path)
    except (rows.RowError, OSError) as err:
        raise AudioError(str(err) if isinstance(err, rows.RowError) else f"{path}: {err}") from err


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Mono: the mean of all channels. Stereo: the first two channels, a mono source duplicated."""
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if channels == 2:
        return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio[:2]
    raise ValueError(f"channels must be 1 or 2, not {channels}")


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with libsoxr at its high-quality setting, channel by channel."""
    if rate == target:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), rate, target, quality="HQ")
    return np.ascontiguousarray(out.T if out.ndim == 2 else out[None], dtype=np.float32)


def load_with_info(path: Path, *, channels: int = 1, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Decode, mix to ``channels`` and resample: ``(channels, samples)`` float32 at ``sample_rate``, and
    what the source file was (for the manifest)."""
    audio, rate, declared = _decode_row(path) if rows.is_row(path) else decode(path)
    info = AudioInfo(audio.shape[1] / rate, rate, audio.shape[0], declared=declared / rate if declared > 0 else None)
    return resample(to_channels(audio, channels), rate, sample_rate), info
