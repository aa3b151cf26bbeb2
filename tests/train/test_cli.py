"""The three commands as a user drives them: what they print, what they write, how they fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
import zarr
from typer.testing import CliRunner

from mrnet.train.cli import predict_app, report_app, train_app
from mrnet.train.runs import RunFolder
from tests.helpers import make_store, tone
from tests.train.conftest import small_config

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # file paths in tables are not cut short
SMALL = [
    "--width",
    "16",
    "--embed-dim",
    "16",
    "--batch-size",
    "4",
    "--crop-seconds",
    "1",
    "--num-workers",
    "0",
    "--device",
    "cpu",
]


def mrnet_train(*args: str):
    return runner.invoke(train_app, [str(a) for a in args])


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def one_line(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines at the terminal width


# --- mrnet-train ----------------------------------------------------------------------------------


def test_train_tiny_prints_progress_and_a_summary_and_writes_the_run(mel_store, tmp_path):
    out = tmp_path / "run"
    result = mrnet_train("--store", mel_store, "--preset", "tiny", "--epochs", "2", "--out", out, *SMALL)
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    assert "official split" in text and "epoch 2" in text
    assert "chosen on the validation split" in text and "optimistic" in text
    assert (out / "report.md").exists() and (out / "plots" / "weights.png").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"] == "tiny" and cfg["epochs"] == 2 and cfg["seed"] == 0
    store = json.loads((out / "store.json").read_text())
    assert (
        store["provenance"]["dim"] == 48
        and store["url"] == str(mel_store)
        and store["genres"] == ["calm", "loud", "mid"]
    )


def test_variant_and_route_ablation_reach_the_model_in_a_default_run_folder(mel_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = mrnet_train(
        "--store",
        mel_store,
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--variant",
        "authors",
        "--drop-route",
        "M2",
        "--drop-route",
        "L1",
        "--no-test-curve",
        *SMALL,
    )
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("mel-20")  # runs/<store name>-<YYYYmmdd-HHMMSS>
    report = RunFolder(run).report()
    assert report["model"]["routes"] == ["L2", "L3", "H", "M1", "M3"] and report["model"]["variant"] == "authors"
    assert list(report["route_weights"]) == ["L2", "L3", "H", "M1", "M3"]
    assert report["optimistic"] is None and "optimistic" not in one_line(result.output)


def test_all_folds_reports_mean_and_std(fold_store, tmp_path):
    out = tmp_path / "cv"
    result = mrnet_train(
        "--store", fold_store, "--preset", "tiny", "--folds", "all", "--epochs", "1", "--out", out, *SMALL
    )
    assert result.exit_code == 0, result.output
    report = RunFolder(out).report()
    accs = [RunFolder(out / f"fold-{k}").report()["test"]["accuracy"] for k in range(3)]
    assert report["n"] == 3 and [r["test_accuracy"] for r in report["folds"]] == accs
    assert report["mean"]["test_accuracy"] == pytest.approx(np.mean(accs))
    assert report["std"]["test_accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert "fold 1 of 3: test = fold 1, valid = fold 2" in RunFolder(out / "fold-1").report()["split"]
    assert "mean ± std" in result.output and "3-fold cross-validation" in one_line(result.output)
    # every track is tested once, by its own fold's model: the folds' confusions add up to one over the dataset
    every = np.asarray(report["test_all_folds"]["confusion"])
    assert (
        every.sum()
        == sum(np.asarray(RunFolder(out / f"fold-{k}").report()["test"]["confusion"]).sum() for k in range(3))
        == 18
    )
    assert (out / "plots" / "folds.png").stat().st_size > 0 and (out / "plots" / "confusion.png").stat().st_size > 0
    assert "plots/folds.png" in (out / "report.md").read_text()
    # each fold's row carries its own bootstrap interval over its test tracks, in report.json and report.md
    for k, row in enumerate(report["folds"]):
        own = RunFolder(out / f"fold-{k}").report()["test"]["interval"]
        assert row["interval"] == own and set(own) == {"accuracy", "macro_f1"}
        low, high = own["accuracy"]
        assert (
            f"{100 * row['test_accuracy']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]" in (out / "report.md").read_text()
        )


def test_one_fold(fold_store, tmp_path):
    result = mrnet_train(
        "--store", fold_store, "--preset", "tiny", "--fold", "2", "--epochs", "1", "--out", tmp_path / "r", *SMALL
    )
    assert result.exit_code == 0, result.output
    assert RunFolder(tmp_path / "r").report()["split"].startswith("fold 2 of 3: test = fold 2, valid = fold 0")


def test_resume_from_the_cli_finishes_a_run_and_refuses_other_options(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    RunFolder(run).report_file.unlink()  # as if it stopped after its last epoch, before the report
    again = mrnet_train("--resume", run)
    assert again.exit_code == 0, again.output
    assert RunFolder(run).report()["test"] == RunFolder(trained_run).report()["test"]
    assert len(RunFolder(run).metrics()) == 2
    refused = mrnet_train("--resume", run, "--lr", "0.1", "--preset", "tiny")  # --epochs may change: it extends the run
    assert refused.exit_code == 2 and "--lr, --preset cannot change" in one_line(refused.output)


# --- bad input ------------------------------------------------------------------------------------


def bad(*args) -> str:
    result = mrnet_train("--preset", "tiny", "--epochs", "1", *SMALL, *args)  # later options win
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return one_line(result.output)


def test_no_training_split(tmp_path):
    store = make_store(tmp_path / "s.zarr", splits=False, folds=2)  # 2 folds: test and valid leave nothing to train on
    assert "training split is empty" in bad("--store", store, "--fold", "0", "--out", tmp_path / "r")
    assert not (tmp_path / "r").exists()  # nothing written for a run that cannot start


def test_one_class(tmp_path):
    store = make_store(tmp_path / "s.zarr", genres=("rock",))
    assert "training split has 1 class" in bad("--store", store, "--out", tmp_path / "r")


def test_unfinished_extraction(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    (store / "manifest" / "tracks.parquet").unlink()
    assert "extraction has not finished" in bad("--store", store, "--out", tmp_path / "r")


def test_incompatible_store_format_version(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    group = zarr.open_group(str(store), mode="r+")
    group.attrs["mrnet"] = {**group.attrs["mrnet"], "format_version": 99}
    assert "store format version 99" in bad("--store", store, "--out", tmp_path / "r")


def test_not_a_store(tmp_path):
    assert "not a feature store" in bad("--store", tmp_path / "nothing.zarr", "--out", tmp_path / "r")


def test_layers_the_store_lacks_or_a_model_too_narrow(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    assert "layers [5] were asked for" in bad("--store", store, "--layer", "5", "--out", tmp_path / "r")
    assert "cannot build MRNet" in bad("--store", store, "--out", tmp_path / "r", "--width", "8")
    assert "--crop-seconds 0.01 gives 1 frame(s)" in bad(
        "--store", store, "--out", tmp_path / "r", "--crop-seconds", "0.01"
    )
    assert not (tmp_path / "r").exists()


def test_a_run_folder_that_exists(mel_store, trained_run):
    assert "already holds a run" in bad("--store", mel_store, "--out", trained_run)


def test_options_that_cannot_work(mel_store, tmp_path):
    assert "--fold and --folds all exclude each other" in bad("--store", mel_store, "--fold", "1", "--folds", "all")
    assert "--lr-min" in bad("--store", mel_store, "--lr", "1e-4", "--lr-min", "1e-3")
    result = mrnet_train("--store", mel_store, "--drop-route", "X9")
    assert result.exit_code == 2 and "X9" in result.output  # Typer names the bad choice
    assert "give --store" in bad()
    assert "--noise-p 1.5: give a finite number, 0 <= x <= 1" in bad("--store", mel_store, "--noise-p", "1.5")
    assert "--time-masks -1: give a whole number, 0 <= x <= 100" in bad("--store", mel_store, "--time-masks", "-1")


def test_augmentation_strengths_reach_the_run_config(mel_store, tmp_path):
    result = mrnet_train(
        "--store",
        mel_store,
        "--preset",
        "tiny",
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        *SMALL,
        "--noise-p",
        "0.2",
        "--time-masks",
        "0",
        "--feature-masks",
        "3",
        "--feature-mask-frac",
        "0.05",
    )
    assert result.exit_code == 0, result.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["noise_p"], cfg["time_masks"], cfg["feature_masks"], cfg["feature_mask_frac"]) == (0.2, 0, 3, 0.05)


def test_resume_missing_or_corrupt_checkpoint(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    assert "last.pt is corrupt or not an mrnet checkpoint" in one_line(mrnet_train("--resume", run).output)
    (run / "checkpoints" / "last.pt").unlink()
    result = mrnet_train("--resume", run)
    assert result.exit_code == 2 and "last.pt is missing, but the run has evaluated epochs" in one_line(result.output)


def test_resume_against_a_changed_store(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    other = make_store(tmp_path / "other.zarr", dim=32)
    result = mrnet_train("--resume", run, "--store", other)
    assert result.exit_code == 2
    text = one_line(result.output)
    assert "is not the store run" in text and "dim: run has 48, store has 32" in text
    layers = make_store(tmp_path / "layers.zarr", layers=2)
    assert "layers: run has [0], store has [0, 1]" in one_line(mrnet_train("--resume", run, "--store", layers).output)


def test_resume_a_folder_that_is_not_a_run(tmp_path):
    result = mrnet_train("--resume", tmp_path)
    assert result.exit_code == 2 and "is not a training run (no config.json)" in one_line(result.output)


# --- mrnet-report ---------------------------------------------------------------------------------


def test_report_renders_metrics_table_and_plots(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    shutil.rmtree(run / "plots")
    (run / "report.md").unlink()
    result = runner.invoke(report_app, [str(run)])
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    assert "chosen on the validation split" in text and "optimistic" in text and "routes W" in text
    assert {p.name for p in (run / "plots").iterdir()} == {"curves.png", "confusion.png", "weights.png"}
    assert "## Per class (test)" in (run / "report.md").read_text()


def test_report_of_an_unfinished_run(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    (run / "report.json").unlink()
    result = runner.invoke(report_app, [str(run)])
    assert result.exit_code == 0, result.output
    assert "has not finished (2 epochs done)" in one_line(result.output) and "mrnet-train --resume" in result.output


# --- mrnet-predict --------------------------------------------------------------------------------


@pytest.fixture
def audio_files(tmp_path) -> list[Path]:
    files = [tmp_path / "a.wav", tmp_path / "b.flac"]
    sf.write(files[0], tone(3.0, sr=22050, freq=330.0), 22050)
    sf.write(files[1], tone(2.0, freq=880.0, channels=2, seed=1), 16000)
    return files


def test_predict_prints_top_genres_with_probabilities(trained_run, audio_files):
    result = runner.invoke(predict_app, [str(trained_run), *map(str, audio_files), "--top", "2"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "a.wav" in result.output and "b.flac" in result.output
    assert sum(result.output.count(g) for g in ("calm", "loud", "mid")) == 4  # 2 genres for each of 2 files
    assert "%" in result.output


def test_predict_json(trained_run, audio_files):
    result = runner.invoke(predict_app, [str(trained_run), str(audio_files[0]), "--json"])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.output)
    assert doc["path"] == str(audio_files[0]) and len(doc["genres"]) == 3
    probs = [g["probability"] for g in doc["genres"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert {g["genre"] for g in doc["genres"]} == {"calm", "loud", "mid"}


def test_predict_reports_an_unreadable_file_and_predicts_the_others(trained_run, audio_files, tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"this is no audio")
    result = runner.invoke(predict_app, [str(trained_run), str(broken), str(audio_files[0]), "--json"])
    assert result.exit_code == 1
    docs = json.loads(result.output[result.output.index("[") :])
    assert "broken.mp3" in docs[0]["error"] and "genres" in docs[1]
    plain = runner.invoke(
        predict_app, [str(trained_run), str(broken), str(audio_files[0]), str(tmp_path / "missing.wav")], env=WIDE
    )
    assert plain.exit_code == 1
    text = one_line(plain.output)
    assert "broken.mp3" in text and "missing.wav" in text and "2 of 3 files failed" in text and "a.wav" in text


def test_predict_refuses_a_run_whose_extractor_it_cannot_reproduce(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    info = json.loads((run / "store.json").read_text())
    info["provenance"]["feature"] = "cqt"
    (run / "store.json").write_text(json.dumps(info))
    result = runner.invoke(predict_app, [str(run), str(tmp_path / "x.wav")])
    assert result.exit_code == 2
    assert "cannot reproduce the features" in one_line(result.output) and "'cqt'" in result.output


def test_predict_an_unfinished_cross_validation_run_names_a_fold_to_use(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"store": "s.zarr", "all_folds": True}))
    result = runner.invoke(predict_app, [str(tmp_path), "x.wav"])
    assert result.exit_code == 2 and "fold-0" in one_line(result.output)


def test_predict_takes_folders_and_csv_lists(trained_run, audio_files, tmp_path):
    (tmp_path / "notes.txt").write_text("not audio")
    listing = tmp_path / "list.csv"
    listing.write_text("path,comment\nb.flac,relative to the CSV\n")
    result = runner.invoke(predict_app, [str(trained_run), str(tmp_path), str(listing), "--json"])
    assert result.exit_code == 0, result.output
    paths = [doc["path"] for doc in json.loads(result.output)]
    assert paths == [
        str(audio_files[0]),
        str(audio_files[1]),
        str(tmp_path / "b.flac"),
    ]  # the folder's audio, sorted; then the list
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(predict_app, [str(trained_run), str(empty)])
    assert result.exit_code == 2 and "holds no audio files" in one_line(result.output)


def test_predict_with_every_fold_averages_their_probabilities(fold_store, audio_files, tmp_path):
    from mrnet.extract.engines import features_of_file
    from mrnet.train.loop import train
    from mrnet.train.predict import Predictor

    run = train(small_config(fold_store, tmp_path / "cv", epochs=1, all_folds=True))
    ensemble = Predictor.open(run)
    assert len(ensemble.models) == 3
    feats = features_of_file(ensemble.engine, audio_files[0])
    each = [Predictor.open(run / f"fold-{k}").probabilities(feats) for k in range(3)]
    np.testing.assert_allclose(ensemble.probabilities(feats), np.mean(each, axis=0), rtol=1e-5)
    result = runner.invoke(predict_app, [str(run), str(audio_files[0])], env=WIDE)
    assert result.exit_code == 0 and "3 folds averaged" in one_line(result.output)


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_training_on_a_store_with_a_deleted_shard_stops_naming_the_track(tmp_path, codec):
    """It used to train with exit 0 on all-zero features (Zarr's fill value) for a zstd store."""
    store = make_store(tmp_path / "s.zarr", codec=codec)
    (store / "features" / "calm.000" / "c" / "0" / "0" / "0" / "0").unlink()
    message = bad("--store", store, "--out", tmp_path / "run")
    assert "track calm.000 cannot be read" in message and f"mrnet-store verify {store}" in message


def test_a_read_only_run_folder_is_named(tmp_path, mel_store, read_only):
    locked = read_only(tmp_path / "runs")
    message = bad("--store", mel_store, "--out", locked / "run")
    assert f"cannot write {locked}/run" in message


@pytest.mark.parametrize("damage", ["root not json", "array not json", "array shape", "array dtype"])
def test_damaged_store_metadata_is_named_not_a_traceback(tmp_path, damage):
    store = make_store(tmp_path / "s.zarr")
    meta = store / "features" / "calm.000" / "zarr.json"
    if damage == "root not json":
        (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
        expect = "zarr.json is not valid JSON"
    elif damage == "array not json":
        meta.write_text("{]")
        expect = "features/calm.000/zarr.json cannot be read"
    else:
        doc = json.loads(meta.read_text())
        if damage == "array shape":
            doc["shape"][3] = 40
        else:
            doc["data_type"] = "float32"
        meta.write_text(json.dumps(doc))
        expect = "features/calm.000 is"
    message = bad("--store", store, "--out", tmp_path / "run")
    assert expect in message and "mrnet-store verify" in message


def test_s3_without_credentials_is_named(s3, monkeypatch):
    _, bucket = s3
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "MRNET_STORAGE_OPTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    message = bad("--store", f"s3://{bucket}/x.zarr")
    assert "NoCredentialsError" in message and "AWS_* variables" in message


@pytest.mark.parametrize("client", ["obstore", "s3fs"])
def test_an_unreachable_endpoint_is_named_through_either_s3_client(s3, monkeypatch, client):
    _, bucket = s3
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens there
    if client == "s3fs":
        monkeypatch.setenv("MRNET_S3_CLIENT", "s3fs")
    message = bad("--store", f"s3://{bucket}/x.zarr")
    assert "object storage refused or could not be reached" in message and "127.0.0.1:1" in message
    assert f"{bucket}/x.zarr/zarr.json" in message or client == "s3fs"  # obstore's error names the object


def test_a_genre_without_training_tracks_is_named(tmp_path):
    store = make_store(tmp_path / "s.zarr", genres=("calm", "loud", "mid", "rare"), per_genre=6)
    from mrnet.store import FeatureStore, Location
    from mrnet.store.writer import StoreWriter

    st = FeatureStore.open(store)
    tracks = st.tracks.with_columns(
        split=pl.when(pl.col("genre") == "rare").then(pl.lit("test")).otherwise(pl.col("split"))
    )
    with StoreWriter.open(Location.parse(store), st.provenance) as writer:
        writer.finalize(tracks, st.genres)
    result = mrnet_train("--store", store, "--preset", "tiny", "--epochs", "1", "--out", tmp_path / "run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "1 genre(s) have no training track (rare): the model cannot learn them" in one_line(result.output)


# --- mrnet-compare ---------------------------------------------------------------------------------
def test_compare_groups_runs_by_model_and_store_with_mean_and_spread(trained_run, mel_store, fold_store, tmp_path):
    from mrnet.train.cli import compare_app

    seeds = [
        mrnet_train(
            "--store",
            mel_store,
            "--preset",
            "tiny",
            "--epochs",
            "2",
            "--seed",
            str(s),
            "--out",
            tmp_path / "runs" / f"s{s}",
            *SMALL,
        )
        for s in (1, 2)
    ]
    folds = mrnet_train(
        "--store",
        fold_store,
        "--preset",
        "tiny",
        "--folds",
        "all",
        "--epochs",
        "1",
        "--out",
        tmp_path / "runs" / "cv",
        *SMALL,
    )
    assert all(r.exit_code == 0 for r in (*seeds, folds))
    result = runner.invoke(compare_app, [str(tmp_path / "runs"), "--out", str(tmp_path / "cmp")], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    by_store = {Path(r["store"]).name: r for r in rows}
    assert by_store["mel.zarr"]["n"] == 2 and by_store["folds.zarr"]["n"] == 3  # two seeds; three folds
    reports = [RunFolder(tmp_path / "runs" / f"s{s}").report()["test"]["accuracy"] for s in (1, 2)]
    assert by_store["mel.zarr"]["accuracy"] == pytest.approx(np.mean(reports))
    assert by_store["mel.zarr"]["accuracy_std"] == pytest.approx(np.std(reports, ddof=1))
    assert by_store["mel.zarr"]["hours"] > 0 and by_store["mel.zarr"]["parameters"] > 0
    assert (tmp_path / "cmp" / "comparison.png").exists()
    assert (
        "| mrnet tiny, 2 epochs, mel.zarr | mel.zarr |" in (tmp_path / "cmp" / "comparison.md").read_text()
    )  # what sets the rows apart


# --- what a user reads ------------------------------------------------------------------------------
def test_train_help_groups_options_in_panels_and_names_every_default():
    text = runner.invoke(train_app, ["--help"], env={"COLUMNS": "250"}).output
    for panel in ("Input and output", "Model", "Optimisation", "Augmentation", "Evaluation and selection", "Machinery"):
        assert f"─ {panel} ─" in text
    assert (
        "<bool>" not in text and "--channels" not in text and "--width" in text
    )  # C is the width; channels are mono/stereo
    actions = (
        "│ --help",
        "│ --store",
        "│ --resume",
        "│ --show-config",
    )  # what to train, or what to do: no default to name
    options = [line for line in text.splitlines() if line.startswith("│ --") and not line.startswith(actions)]
    described = "\n".join(text.splitlines())
    assert len(options) >= 40
    for line in options:  # every option's default is named, in its own row or the rows under it
        name = line.split()[1]
        block = described[described.index(line) :].split("│ --", 2)[1]
        assert "[default:" in block, f"{name} shows no default"
    assert (
        "[default: on]" in text and "[default: off]" in text and "((" not in text
    )  # escaped markup, no nested brackets


def test_show_config_prints_what_the_preset_and_options_make_and_trains_nothing(mel_store, tmp_path):
    result = mrnet_train(
        "--store",
        mel_store,
        "--preset",
        "small",
        "--width",
        "24",
        "--optimizer",
        "sgd",
        "--stage",
        "3:sgd:0.01",
        "--schedule",
        "stages",
        "--out",
        tmp_path / "run",
        "--show-config",
    )
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert (
        cfg["preset"] == "small"
        and cfg["model_options"]["width"] == 24
        and cfg["optimizer"] == "sgd"
        and cfg["stages"] == [[3, "sgd", 0.01]]
    )
    assert cfg["epochs"] == 60 and not (tmp_path / "run").exists()  # the preset's length; no run folder made
