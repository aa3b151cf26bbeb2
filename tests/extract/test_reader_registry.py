"""The dataset readers' registry: one declaration per reader file, one ``read`` signature, and
``scan`` dispatching through it (a new reader needs nothing else)."""

from __future__ import annotations

import inspect

import polars as pl
import pytest

from mrnet.core.errors import UserError
from mrnet.extract import datasets
from mrnet.extract.datasets import READERS, ReaderOptions, reader, scan
from mrnet.extract.datasets.base import make_scan, tracks_frame
from mrnet.extract.datasets.registry import SPECIFIC


def test_every_reader_is_declared_once_with_one_read_signature():
    assert tuple(READERS) == ("gtzan", "fma_small", "fma_medium", "fma_large", "melon", "mtat", "folder", "demo", "hf")
    for name, declared in READERS.items():
        assert list(inspect.signature(declared.read).parameters) == ["root", "options"], name
        assert set(declared.takes) <= set(SPECIFIC)
    assert {n: (r.ships, r.features) for n, r in READERS.items() if (r.ships, r.features) != ("audio", "wavlm")} == {
        "melon": ("melon", "mel"),
        "demo": ("audio", "mel"),
    }
    with pytest.raises(ValueError, match="registered twice"):
        reader("gtzan")(lambda root, options: None)


@pytest.fixture
def moods(monkeypatch, tmp_path):
    """A reader declared the way a new reader file declares itself, registered for this test only."""
    monkeypatch.setattr(datasets.registry, "READERS", dict(READERS))
    monkeypatch.setattr(datasets, "READERS", datasets.registry.READERS)
    seen = []

    @reader("moods", labelings=("mood", "energy"))
    def read(root, options: ReaderOptions):
        seen.append(options)
        raw = pl.DataFrame(
            {"track_id": ["a", "b"], "path": ["a.wav", "b.wav"], "genre": ["calm", "loud"], "split": ["train", "test"]}
        )
        return make_scan(options.name, root, source="audio", labeling=options.labeling, tracks=tracks_frame(raw))

    (tmp_path / "a.wav").touch()
    return seen


def test_scan_dispatches_to_a_registered_reader_with_its_options(moods, tmp_path):
    found = scan("moods", tmp_path, labeling="energy", folds=3, seed=7)
    assert found.tracks.height == 2 and found.labeling == "energy"
    assert moods == [ReaderOptions("moods", "energy", folds=3, seed=7)]
    assert scan("moods", tmp_path).labeling == "mood"  # the first declared labeling is the default


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(tags="10"), "--tags and --keep-untagged apply to mtat; moods has its own labels"),
        (dict(labels="x.csv"), "--labels applies to the folder dataset only; moods reads its labels"),
        (dict(labeling="genre"), "--labeling 'genre' does not apply to moods: choose mood or energy"),
    ],
)
def test_options_a_reader_does_not_declare_are_refused_before_it_reads(moods, tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        scan("moods", tmp_path, **options)
    assert moods == []


def test_a_reader_whose_scan_contradicts_its_declaration_is_a_programming_error(moods, tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.setitem(datasets.READERS, "moods", replace(datasets.READERS["moods"], ships="melon"))
    with pytest.raises(ValueError, match="declared to ship 'melon' but its scan lists 'audio'"):
        scan("moods", tmp_path)
