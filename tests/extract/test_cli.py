"""``mrnet-extract`` driven as a user would, through Typer's CliRunner."""

from __future__ import annotations

from typer.testing import CliRunner

from mrnet.extract.cli import app
from mrnet.store import FeatureStore
from tests.extract.test_pipeline import make_audio_folder

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_folder_extraction_prints_progress_summary_and_failures(tmp_path):
    root = make_audio_folder(tmp_path / "music")
    out = tmp_path / "s.zarr"
    result = invoke(
        "folder", "--root", root, "--features", "mel", "--out", out, "--manifests-dir", tmp_path / "m", "--folds", "2"
    )
    assert result.exit_code == 0, result.output
    assert "6 done, 2 failed" in result.output
    assert "broken.wav" in result.output and "the run went on" in result.output
    assert FeatureStore.open(out).tracks.height == 8
    again = invoke(
        "folder", "--root", root, "--features", "mel", "--out", out, "--manifests-dir", tmp_path / "m", "--folds", "2"
    )
    assert "resuming with 0 to go" in again.output and "8 tracks done (or failed) in earlier runs" in again.output


def test_dry_run_reports_cost_and_writes_nothing(tmp_path):
    root = make_audio_folder(tmp_path / "music")
    out = tmp_path / "s.zarr"
    result = invoke(
        "folder",
        "--root",
        root,
        "--features",
        "mel",
        "--out",
        out,
        "--dry-run",
        "--folds",
        "2",
        "--manifests-dir",
        tmp_path / "m",
    )
    assert result.exit_code == 0, result.output
    assert "tracks" in result.output and "audio" in result.output and "store size" in result.output
    assert "MB per audio second" in result.output and "timed on" in result.output
    assert not out.exists() and not (tmp_path / "m").exists()


def test_demo_defaults_to_mel_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("MRNET_DEMO_DIR", str(tmp_path / "demo"))
    out = tmp_path / "demo.zarr"
    result = invoke("demo", "--out", out, "--manifests-dir", tmp_path / "m", "--limit", "8")
    assert result.exit_code == 0, result.output
    assert "using --features mel" in result.output
    store = FeatureStore.open(out)
    assert store.provenance.feature == "mel" and store.tracks["status"].to_list().count("done") == 8


def test_bad_input_is_one_clear_message(tmp_path):
    cases = [
        (["folder", "--root", tmp_path / "nope"], "nope"),
        (["gtzan", "--root", tmp_path], "genres"),
        (["melon", "--root", tmp_path, "--features", "wavlm"], "mel"),
        (["folder", "--root", tmp_path / "music", "--layers", "a-b"], "--layers"),
        (["folder", "--root", tmp_path / "music", "--gpus", "0,1"], "--gpus"),
        (
            ["folder", "--root", tmp_path / "music", "--layers", "2-1"],
            "--layers '2-1': 2-1 is an empty range",
        ),  # ranges: test_outputs.py
    ]
    make_audio_folder(tmp_path / "music", bad=False)
    for args, needle in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output and needle in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_unknown_dataset_lists_the_choices():
    result = invoke("fma_huge")
    assert result.exit_code == 2
    assert "fma_large" in result.output and "gtzan" in result.output


def test_out_pointing_at_a_folder_of_other_files_deletes_nothing_and_writes_nothing(tmp_path, monkeypatch):
    """mrnet-extract demo --out DIR used to exit 0 after deleting every file in DIR."""
    monkeypatch.setenv("MRNET_DEMO_DIR", str(tmp_path / "demo"))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "paper.tex").write_text("do not lose")
    for extra in ([], ["--overwrite"]):
        result = invoke("demo", "--out", precious, "--manifests-dir", tmp_path / "m", "--limit", "4", *extra)
        assert result.exit_code == 2 and "is not empty and is not an mrnet store" in result.output
    assert [p.name for p in precious.iterdir()] == ["paper.tex"] and (
        precious / "paper.tex"
    ).read_text() == "do not lose"
    assert not (tmp_path / "m").exists()  # a refused run writes no manifests either


def test_dry_run_sizes_each_feature_kind(tmp_path):
    root = make_audio_folder(tmp_path / "music")
    for feature, per_second in (("wave", "0.088"), ("mel128", "0.022"), ("mfcc", "0.002")):
        result = invoke(
            "folder",
            "--root",
            root,
            "--features",
            feature,
            "--dry-run",
            "--folds",
            "2",
            "--out",
            tmp_path / f"{feature}.zarr",
        )
        assert result.exit_code == 0 and f"({per_second} MB per audio second)" in result.output, (
            feature,
            result.output,
        )


# --- what a user reads -----------------------------------------------------------------------------------
def help_text() -> str:
    return runner.invoke(app, ["--help"], env={"COLUMNS": "320"}).output


def test_help_groups_options_in_panels_and_shows_every_default():
    text = help_text()
    for panel in ("Input", "Features", "Output", "Machinery"):
        assert f"─ {panel} ─" in text
    assert "<bool>" not in text and " ." not in text and " ," not in text
    assert (
        "[default: store/DATASET.zarr; for folder, store/<root folder's name>.zarr]" in text
        and "[default: as the model's preprocessor says]" in text
    )
    assert "8 in fma_small, 16 in medium and large" in text


def test_dry_run_shows_the_scans_notes_first(tmp_path):
    root = make_audio_folder(tmp_path / "music")
    (root / "calm" / "song.m4a").write_bytes(b"")
    result = invoke(
        "folder", "--root", root, "--features", "mel", "--dry-run", "--folds", "2", "--out", tmp_path / "s.zarr"
    )
    assert result.exit_code == 0 and "note:" in result.output and "are not audio mrnet reads" in result.output
    assert ".m4a 1" in " ".join(result.output.split())


def test_limit_takes_every_genre_and_says_what_it_took(tmp_path, monkeypatch):
    monkeypatch.setenv("MRNET_DEMO_DIR", str(tmp_path / "demo"))
    result = invoke("demo", "--out", tmp_path / "d.zarr", "--manifests-dir", tmp_path / "m", "--limit", "8")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--limit 8: 8 of 120 tracks, taken from each genre in turn: ambient 2, arpeggio 2, drums 2, groove 2" in text
    assert FeatureStore.open(tmp_path / "d.zarr").tracks["genre"].value_counts()["count"].to_list() == [2, 2, 2, 2]


def test_two_stores_of_one_dataset_keep_their_own_manifests(tmp_path):
    root = make_audio_folder(tmp_path / "music")
    for name, feature in (("a", "mel"), ("b", "mfcc")):
        result = invoke(
            "folder",
            "--root",
            root,
            "--features",
            feature,
            "--out",
            tmp_path / f"{name}.zarr",
            "--manifests-dir",
            tmp_path / "m",
            "--folds",
            "2",
        )
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["a", "b"]


def test_layers_apply_to_encoders_only(tmp_path):
    root = make_audio_folder(tmp_path / "music")
    result = invoke("folder", "--root", root, "--features", "mel", "--layers", "0-3", "--out", tmp_path / "s.zarr")
    assert (
        result.exit_code == 2
        and "--layers chooses an encoder's hidden states; --features mel has one layer"
        in " ".join(result.output.split())
    )
