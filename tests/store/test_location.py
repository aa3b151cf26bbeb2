"""Location: storage options from JSON or the environment, and fresh listings."""

from __future__ import annotations

import pytest

from mrnet.core.errors import UserError
from mrnet.store import Location
from mrnet.store.location import STORAGE_OPTIONS_ENV, storage_options_from_json


def test_url_takes_storage_options_from_environment(monkeypatch):
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, '{"endpoint_url": "http://127.0.0.1:9", "anon": true}')
    assert Location.parse("s3://b/x.zarr").storage_options == {"endpoint_url": "http://127.0.0.1:9", "anon": True}
    assert Location.parse("s3://b/x.zarr", {"anon": False}).storage_options == {"anon": False}  # explicit wins
    assert Location.parse("relative/x.zarr").storage_options == {}  # local paths ignore it


@pytest.mark.parametrize("text, message", [("{nope", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_bad_storage_options_are_a_user_error(monkeypatch, text, message):
    with pytest.raises(UserError, match=message):
        storage_options_from_json(text)
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, text)
    with pytest.raises(UserError, match=STORAGE_OPTIONS_ENV):
        Location.parse("s3://b/x.zarr")


def test_files_lists_every_object_with_its_size(store):
    files = Location.parse(store).files()
    assert files["zarr.json"] > 0 and "manifest/tracks.parquet" in files
    assert sum(1 for rel in files if rel.endswith("/c/0/0/0/0")) == 6
    assert set(Location.parse(store).files("manifest")) == {
        "manifest/tracks.parquet",
        "manifest/genres.parquet",
        "manifest/summary.json",
        "manifest/statistics.npz",
        "manifest/statistics.json",
    }
    assert Location.parse(store / "nothing-here").files() == {}
