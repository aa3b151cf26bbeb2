"""Where a run's outputs go (issue 21, item 7; issue 23, section 5) and every extraction option
checked where it is parsed, its range in --help (issue 21, items 9, 11, 13)."""

from __future__ import annotations

import os

import polars as pl
import pytest
from typer.testing import CliRunner

from mrnet.core.errors import UserError
from mrnet.extract.cli import app
from mrnet.extract.config import ExtractConfig
from tests.extract.test_errors import extract, one_line
from tests.extract.test_pipeline import make_audio_folder

runner = CliRunner()


def test_a_folder_datasets_default_store_is_named_after_its_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("my_music", "other_music"):
        make_audio_folder(tmp_path / name, bad=False, per_genre=2)
        result = runner.invoke(app, ["folder", "--root", name, "--features", "mel", "--folds", "2"])
        assert result.exit_code == 0, result.output
    for name in ("my_music", "other_music"):  # as the README trains: store/my_music.zarr, manifests/my_music/
        assert (tmp_path / "store" / f"{name}.zarr" / "zarr.json").is_file()
        assert pl.read_parquet(tmp_path / "manifests" / name / "tracks.parquet").height == 4
    assert not (tmp_path / "store" / "folder.zarr").exists()


def test_two_stores_of_one_name_in_different_folders_do_not_share_manifests(tmp_path):
    first = extract(tmp_path, "--out", tmp_path / "a" / "x.zarr", "--manifests-dir", tmp_path / "m")
    assert first.exit_code == 0, first.output
    before = (tmp_path / "m" / "x" / "tracks.parquet").read_bytes()
    second = extract(tmp_path, "--out", tmp_path / "b" / "x.zarr", "--manifests-dir", tmp_path / "m")
    text = one_line(second.output)
    assert (
        second.exit_code == 2
        and "holds the manifests of another store of this name" in text
        and f"{tmp_path}/a/x.zarr" in text
    ), text
    assert (tmp_path / "m" / "x" / "tracks.parquet").read_bytes() == before
    assert not (tmp_path / "b" / "x.zarr").exists()  # a refused run writes nothing


def test_a_second_folder_dataset_into_the_same_store_is_refused(tmp_path):
    out, manifests = tmp_path / "s.zarr", tmp_path / "m"
    assert extract(tmp_path, "--out", out, "--manifests-dir", manifests).exit_code == 0
    before = (manifests / "s" / "tracks.parquet").read_bytes()
    other = make_audio_folder(tmp_path / "other", genres=("a", "b"), bad=False)
    result = extract(tmp_path, "--out", out, "--manifests-dir", manifests, root=other)
    text = one_line(result.output)
    assert (
        result.exit_code == 2 and f"was extracted from folder at {tmp_path / 'music'}" in text and "--overwrite" in text
    ), text
    assert (manifests / "s" / "tracks.parquet").read_bytes() == before
    again = extract(tmp_path, "--out", out, "--manifests-dir", manifests)  # the same dataset resumes as before
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("option", ["--out", "--manifests-dir"])
def test_out_or_manifests_dir_pointing_at_a_file_is_named(tmp_path, option):
    (tmp_path / "a_file").write_text("mine\n")
    other = {"--out": ["--manifests-dir", tmp_path / "m"], "--manifests-dir": ["--out", tmp_path / "s.zarr"]}[option]
    result = extract(tmp_path, option, tmp_path / "a_file", *other)
    assert result.exit_code == 2 and f"{option} {tmp_path / 'a_file'} is a file" in one_line(result.output), (
        result.output
    )
    assert (tmp_path / "a_file").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-5"], "Invalid value for '--limit': Input should be greater than or equal to 0"),
        (["--workers", "-1"], "Invalid value for '--workers': Input should be greater than or equal to 0"),
        (["--threads", "1000000"], "Invalid value for '--threads': Input should be less than or equal to 256"),
        (["--threads", "-1"], "Invalid value for '--threads'"),
        (["--io-threads", "-1"], "Invalid value for '--io-threads'"),
        (
            ["--window-seconds", "1e-9"],
            "Invalid value for '--window-seconds': Input should be greater than or equal to 1",
        ),
        (["--window-seconds", "nan"], "Invalid value for '--window-seconds'"),
        (["--window-seconds", "inf"], "Invalid value for '--window-seconds'"),
        (["--window-seconds", "-3"], "Invalid value for '--window-seconds'"),
        (["--window-seconds", "100000"], "Invalid value for '--window-seconds'"),
        (["--chunk-frames", "0"], "Invalid value for '--chunk-frames'"),
        (["--chunk-frames", "1000000000"], "Invalid value for '--chunk-frames'"),
        (["--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["--unit-size", "-2"], "Invalid value for '--unit-size'"),
        (["--seed", "-1"], "Invalid value for '--seed'"),
        (["--seed", str(2**70)], "Invalid value for '--seed'"),
        (["--folds", "1"], "Invalid value for '--folds'"),
        (["--layers", "2-1"], "--layers '2-1': 2-1 is an empty range; write the smaller first: 1-2"),
    ],
)
def test_every_numeric_option_is_checked_where_it_is_parsed(tmp_path, args, message):
    result = extract(tmp_path, "--out", tmp_path / "s.zarr", "--manifests-dir", tmp_path / "m", *args)
    assert result.exit_code == 2 and message in one_line(result.output.replace("│", " ")), result.output
    assert not (tmp_path / "s.zarr").exists()


def test_the_ranges_are_shown_in_help():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "250"})
    for shown in ("[0<=x<=256]", "[1.0<=x<=120.0]", "[0<=x<=1000000000]", "[1<=x<=100000]", "[2<=x<=100]"):
        assert shown in result.output, shown


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("limit", -5),
        ("workers", -1),
        ("threads", 10**6),
        ("window_seconds", float("nan")),
        ("window_seconds", float("inf")),
        ("chunk_frames", 10**9),
        ("layers", ()),
    ],
)
def test_the_library_config_checks_the_same_ranges(field, value):
    with pytest.raises(UserError, match=f"--{field.replace('_', '-')}"):
        ExtractConfig(dataset="folder", **{field: value})


def test_chunk_frames_too_large_for_memory_says_how_much_it_would_need(tmp_path, monkeypatch):
    real = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda name: 1024 if name == "SC_PHYS_PAGES" else real(name))  # a 4 MiB machine
    result = extract(
        tmp_path, "--out", tmp_path / "s.zarr", "--manifests-dir", tmp_path / "m", "--chunk-frames", "50000"
    )
    text = one_line(result.output)
    assert (
        result.exit_code == 2
        and "--chunk-frames 50000: every track would need at least" in text
        and "GiB of memory" in text
    ), text
    assert "choose at most" in text and not (tmp_path / "s.zarr").exists()
