"""Declared manifest schemas: exact columns, lossless casts, and columns added since a format was published."""

from __future__ import annotations

import polars as pl
import pytest

from mrnet.core.errors import UserError
from mrnet.manifests.schema import ADDED_COLUMNS, TRACKS, validate


def a_row() -> dict:
    return dict.fromkeys(TRACKS.names()) | {
        "track_id": "a",
        "key": "a",
        "path": "g/a.wav",
        "status": "done",
        "genres_all": [],
    }


def test_a_manifest_from_before_a_column_was_added_reads_it_as_null():
    old = pl.DataFrame([a_row()], schema=TRACKS).drop(list(ADDED_COLUMNS))
    read = validate(old, TRACKS, name="old tracks")
    assert read.schema == TRACKS and read["warning"].to_list() == [None]


def test_any_other_missing_or_extra_column_is_refused_by_name():
    with pytest.raises(
        UserError, match=r"old tracks: columns do not match the declared schema; missing \['checksum'\]"
    ):
        validate(pl.DataFrame([a_row()], schema=TRACKS).drop("checksum"), TRACKS, name="old tracks")
    with pytest.raises(UserError, match=r"unexpected \['mood'\]"):
        validate(pl.DataFrame([a_row()], schema=TRACKS).with_columns(mood=pl.lit("sad")), TRACKS, name="t")
