"""Audio held in the rows of a Hugging Face dataset's files: ``<file>#<row>`` as a track's path.

A ``datasets`` dataset keeps each clip's encoded bytes in its audio column, in Arrow files
(``save_to_disk``: IPC streams, ``<split>/data-00000-of-00001.arrow``) or Parquet files (the hub's
layout, ``to_parquet``). The hf reader lists a track as the file that holds it and its row in that
file, ``train/data-00000-of-00001.arrow#17``, a path inside the dataset's root like any other, so the
manifest says where each clip is and no path leaves the root. :func:`open_row` gives one row's
bytes, for libsndfile to decode as it decodes a file: an Arrow file is memory-mapped (nothing is read
into memory until a row is asked for), a Parquet file is read one row group at a time (the last
group is kept per thread, so a work unit's neighbouring rows cost one read). Nothing is copied.

>>> is_row(Path("/data/gtzan/train/data-00000-of-00001.arrow#17")), is_row(Path("/data/a.wav"))
(True, False)
"""

from __future__ import annotations

import io
import re
import threading
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_ROW = re.compile(r"^(?P<file>.+\.(?:arrow|parquet))#(?P<row>\d+)$")
_LOCAL = threading.local()


class RowError(OSError):
    """A row that holds no audio bytes, or a file that does not have it."""


def is_row(path: Path | str) -> bool:
    return _ROW.match(str(path)) is not None


def split_row(path: Path | str) -> tuple[Path, int]:
    """``(file, row)`` of a row path."""
    match = _ROW.match(str(path))
    if match is None:
        raise ValueError(f"{path} is not <file>.arrow#<row> or <file>.parquet#<row>")
    return Path(match["file"]), int(match["row"])


def row_path(file: str, row: int) -> str:
    return f"{file}#{row}"


def audio_column(schema: pa.Schema) -> str | None:
    """The audio column ``datasets`` recorded in a file's schema metadata (its Audio feature), if any."""
    from datasets import Audio, Features

    features = Features.from_arrow_schema(schema)
    found = [name for name, feature in features.items() if isinstance(feature, Audio)]
    return found[0] if len(found) == 1 else None


def open_row(path: Path | str) -> io.BytesIO:
    """The encoded audio of one row, as a file object named after the row (``RowError`` naming it)."""
    file, row = split_row(path)
    if file.suffix == ".arrow":
        table = _arrow(str(file))
        if not 0 <= row < table.num_rows:
            raise RowError(f"{path}: {file.name} has {table.num_rows} rows")
        value = table.column(_audio_of(str(file), table.schema))[row].as_py()
    else:
        value = _parquet_row(str(file), row, path)
    data = (value or {}).get("bytes")
    if not data:
        elsewhere = (value or {}).get("path")
        raise RowError(
            f"{path}: the row holds no audio bytes"
            + (
                f", only a path ({elsewhere!r}) that the dataset does not contain;"
                " save the dataset with its audio embedded (datasets embeds it in save_to_disk and push_to_hub)"
                if elsewhere
                else ""
            )
        )
    out = io.BytesIO(data)
    out.name = str(path)
    return out


@lru_cache(maxsize=64)
def _arrow(file: str) -> pa.Table:
    """An Arrow IPC stream memory-mapped, as ``datasets.load_from_disk`` maps it: zero copy."""
    return pa.ipc.open_stream(pa.memory_map(file)).read_all()


@lru_cache(maxsize=256)
def _audio_of(file: str, schema: pa.Schema) -> str:
    name = audio_column(schema)
    if name is None:
        raise RowError(f"{file}: no single audio column in its features")
    return name


def _parquet_row(file: str, row: int, path: Path | str) -> dict | None:
    meta = _parquet_meta(file)
    starts, column = meta
    group = next((g for g in range(len(starts) - 1) if starts[g] <= row < starts[g + 1]), None)
    if group is None:
        raise RowError(f"{path}: {Path(file).name} has {starts[-1]} rows")
    cached = getattr(_LOCAL, "group", None)
    if cached is None or cached[0] != (file, group):
        table = pq.ParquetFile(file).read_row_group(group, columns=[column])
        cached = ((file, group), table.column(column))
        _LOCAL.group = cached
    return cached[1][row - starts[group]].as_py()


@lru_cache(maxsize=256)
def _parquet_meta(file: str) -> tuple[list[int], str]:
    """Each row group's first row (and the total), and the audio column."""
    parquet = pq.ParquetFile(file)
    starts = [0]
    for g in range(parquet.metadata.num_row_groups):
        starts.append(starts[-1] + parquet.metadata.row_group(g).num_rows)
    return starts, _audio_of(file, parquet.schema_arrow)
