"""The length an audio file's header declares, read from the header itself.

libsndfile trims a WAV or AU header's data size to the bytes actually in the file, so a file cut
short in a download or a copy (or one whose header declares 18 hours over one second of samples)
looks whole to it. This module reads the declared size as written, for ``audio.decode`` to compare
with what was decoded. MP3 (Xing/LAME frame count) and FLAC (STREAMINFO) lengths are libsndfile's
own; a cut FLAC or Ogg file fails to decode instead.

>>> import io, struct
>>> fmt = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)
>>> wav = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4000)
>>> wav_frames(io.BytesIO(wav))
1000
>>> au = b".snd" + struct.pack(">IIIII", 24, 2000, 3, 8000, 1)
>>> au_frames(io.BytesIO(au))
1000
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

#: Bytes per sample of the AU encodings libsndfile reads (mu-law, 8/16/24/32-bit PCM, float, double, A-law).
AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}
_UNKNOWN = (0, 0xFFFFFFFF)  # sizes a streaming writer leaves when it does not know the length


def declared_frames(path: Path | str) -> int | None:
    """Frames the header of a WAV or AU file declares, or None (another format, or a length left unknown)."""
    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        if magic in (b"RIFF", b"RIFX"):
            return wav_frames(f)
        if magic in (b".snd", b"dns."):
            return au_frames(f)
    return None


def wav_frames(f: BinaryIO) -> int | None:
    """The ``data`` chunk's declared size over the ``fmt`` chunk's block size."""
    head = f.read(12)
    if len(head) < 12 or head[8:12] != b"WAVE":
        return None
    endian = "<" if head[:4] == b"RIFF" else ">"
    block = None
    for _ in range(64):  # chunks before the data: fmt, fact, LIST, ...
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        name, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
        if name == b"data":
            return size // block if block and size not in _UNKNOWN else None
        body = f.read(size + (size & 1))  # chunks are padded to an even size
        if name == b"fmt " and len(body) >= 14:
            block = struct.unpack(endian + "H", body[12:14])[0]
    return None


def au_frames(f: BinaryIO) -> int | None:
    """The AU header's data size over the frame size its encoding and channels give."""
    head = f.read(24)
    if len(head) < 24:
        return None
    endian = ">" if head[:4] == b".snd" else "<"
    _, size, encoding, _, channels = struct.unpack(endian + "5I", head[4:])
    width = AU_SAMPLE_BYTES.get(encoding)
    if size in _UNKNOWN or not width or not channels:
        return None
    return size // (width * channels)
