"""Extraction end to end on generated audio: store round trip, bad files, resume, workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from mrnet.extract.config import ExtractConfig
from mrnet.extract.engines import engine_for_store, features_of_file
from mrnet.extract.pipeline import run
from mrnet.manifests.schema import TRACKS
from mrnet.store import FeatureStore


def make_audio_folder(root: Path, *, genres=("calm", "loud"), per_genre=3, seconds=1.5, rate=22050, bad=True) -> Path:
    """``root/<genre>/<genre>NN.wav`` tones at ``rate`` (resampled to 16 kHz by the tool), plus broken files."""
    rng = np.random.default_rng(0)
    for g, genre in enumerate(genres):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(per_genre):
            n = int(seconds * rate) + 37 * i
            t = np.arange(n) / rate
            x = 0.3 * np.sin(2 * np.pi * (220 * (g + 1) + 30 * i) * t) + 0.02 * rng.normal(size=n)
            sf.write(root / genre / f"{genre}{i:02d}.wav", np.stack([x, 0.5 * x], 1).astype(np.float32), rate)
    if bad:
        (root / genres[0] / "broken.wav").write_bytes(b"this is not a RIFF file" * 10)
        sf.write(root / genres[1] / "empty.wav", np.zeros((0, 1), np.float32), rate)
    return root


@pytest.fixture()
def folder(tmp_path):
    return make_audio_folder(tmp_path / "music")


def config(tmp_path, root, **kw) -> ExtractConfig:
    base = dict(
        dataset="folder",
        root=root,
        out=str(tmp_path / "store" / "folder.zarr"),
        manifests_dir=tmp_path / "manifests",
        features="mel",
        unit_size=2,
        folds=2,
    )
    return ExtractConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "features,dtype",
    [
        ("mel", "float16"),
        ("mel", "float32"),
        ("wavlm", "float16"),
        ("mel128", "float16"),
        ("mel96", "float32"),
        ("mfcc", "float16"),
        ("wave", "float16"),
        ("wave+mfcc", "float16"),
    ],
)
def test_store_round_trip(tmp_path, folder, tiny_wavlm, features, dtype):
    cfg = config(tmp_path, folder, features=features, dtype=dtype, model=tiny_wavlm, window_seconds=1.0)
    summary = run(cfg)
    store = FeatureStore.open(cfg.store)
    tracks = store.tracks
    assert store.finalized and tracks.height == 8
    done = tracks.filter(pl.col("status") == "done")
    assert done.height == 6 and done["frames"].min() > 0 and done["checksum"].null_count() == 0
    assert done["sample_rate"].unique().to_list() == [22050] and done["channels"].unique().to_list() == [2]
    failed = tracks.filter(pl.col("status") == "failed").sort("track_id")
    assert failed["path"].to_list() == ["calm/broken.wav", "loud/empty.wav"]
    assert "broken.wav" in failed["error"][0] and "no audio" in failed["error"][1]
    prov = store.provenance
    assert (prov.feature, prov.dtype, prov.channels, prov.dataset) == (features, dtype, 1, "folder")
    assert prov.versions["torch"] and prov.extraction["chunk_frames"] == 150
    # what was stored is what the extractor computes for that file, read back as a crop too
    engine = engine_for_store(prov)
    row = done.row(0, named=True)
    expect = features_of_file(engine, folder / row["path"]).astype(dtype)
    assert np.array_equal(store.read(row["key"]), expect)
    assert np.array_equal(store.read(row["key"], 5, 25, layers=[0]), expect[:, :1, 5:25])
    # manifests beside the store, and the summary of the run
    assert pl.read_parquet(tmp_path / "manifests" / "folder" / "tracks.parquet").equals(tracks)
    assert summary.failed.height == 2 and summary.skipped == 0


def test_a_threads_setting_does_not_leak_into_the_next_run_in_the_process(tmp_path, folder, tiny_wavlm):
    """--threads N sets torch's process-wide thread count; a later run without it must get torch's own
    count back, or its features differ in the last bits from the same run in a fresh process."""
    common = dict(features="wavlm", model=tiny_wavlm, window_seconds=1.0)
    run(config(tmp_path / "one", folder, threads=1, **common))
    cfg = config(tmp_path / "auto", folder, **common)
    run(cfg)
    store = FeatureStore.open(cfg.store)
    engine = engine_for_store(store.provenance)
    for row in store.tracks.filter(pl.col("status") == "done").iter_rows(named=True):
        assert np.array_equal(
            store.read(row["key"]), features_of_file(engine, folder / row["path"]).astype("float16")
        ), row["path"]


def test_decoding_and_writing_threads_change_nothing_in_the_store(tmp_path, folder, tiny_wavlm):
    common = dict(features="wavlm", model=tiny_wavlm, window_seconds=1.0, unit_size=4)
    stores = []
    for io in (1, 4):
        cfg = config(tmp_path / f"io{io}", folder, io_threads=io, **common)
        run(cfg)
        stores.append(FeatureStore.open(cfg.store))
    a, b = (s.tracks.sort("track_id") for s in stores)
    assert a.select("track_id", "status", "checksum", "frames").equals(
        b.select("track_id", "status", "checksum", "frames")
    )
    assert a["status"].to_list().count("done") == 6


def test_second_run_does_only_what_is_missing(tmp_path, folder):
    cfg = config(tmp_path, folder)
    run(cfg)
    seen = []
    again = run(cfg, on_unit=seen.append)
    assert seen == [] and again.skipped == 8
    # a new file appears: only it is computed
    extra = folder / "calm" / "calm99.wav"
    sf.write(extra, np.sin(np.arange(30000) / 9).astype(np.float32), 22050)
    third = run(cfg, on_unit=seen.append)
    assert sum(len(u.rows) for u in seen) == 1
    assert third.tracks.filter(pl.col("track_id") == "calm/calm99")["status"].item() == "done"


def test_failed_tracks_are_retried_only_on_request(tmp_path, folder):
    cfg = config(tmp_path, folder)
    run(cfg)
    (folder / "calm" / "broken.wav").unlink()
    sf.write(folder / "calm" / "broken.wav", np.sin(np.arange(30000) / 9).astype(np.float32), 22050)
    assert run(cfg).tracks.filter(pl.col("status") == "failed").height == 2
    fixed = run(replace(cfg, retry_failed=True)).tracks
    assert fixed.filter(pl.col("status") == "failed")["path"].to_list() == ["loud/empty.wav"]


def test_other_settings_cannot_write_into_a_store(tmp_path, folder):
    from mrnet.core.errors import UserError

    cfg = config(tmp_path, folder)
    run(cfg)
    with pytest.raises(UserError, match="dtype: store has 'float16', this run has 'float32'"):
        run(replace(cfg, dtype="float32"))
    run(replace(cfg, dtype="float32", overwrite=True))
    assert FeatureStore.open(cfg.store).provenance.dtype == "float32"


def _mrnet_extract() -> str:
    return str(Path(sys.executable).parent / "mrnet-extract")


def test_resume_after_kill_9(tmp_path, tiny_wavlm):
    """A real extraction process killed with SIGKILL part-way, then rerun: complete, nothing done twice or lost."""
    root = make_audio_folder(tmp_path / "music", genres=("a", "b", "c"), per_genre=12, seconds=2.0, bad=False)
    args = [
        "folder",
        "--root",
        str(root),
        "--features",
        "wavlm",
        "--model",
        tiny_wavlm,
        "--unit-size",
        "1",
        "--window-seconds",
        "1",
        "--folds",
        "3",
        "--manifests-dir",
        str(tmp_path / "m"),
    ]
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen(
        [_mrnet_extract(), *args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "progress").glob("*.parquet"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = FeatureStore.open(out).tracks  # the journal of the killed run
    assert 3 <= partial.height < 36, "the kill should land part-way"
    assert not FeatureStore.open(out).finalized
    store = FeatureStore.open(out)
    for key, crc in partial.select("key", "checksum").iter_rows():  # everything journaled as done is whole
        from mrnet.store.format import checksum

        assert checksum(store.read(key)) == crc
    done = subprocess.run([_mrnet_extract(), *args, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    clean = tmp_path / "clean.zarr"
    subprocess.run([_mrnet_extract(), *args, "--out", str(clean)], check=True, capture_output=True, timeout=300)
    a, b = FeatureStore.open(out), FeatureStore.open(clean)
    assert a.tracks.height == b.tracks.height == 36
    assert a.tracks["status"].unique().to_list() == ["done"]
    assert a.tracks.sort("track_id")["checksum"].to_list() == b.tracks.sort("track_id")["checksum"].to_list()


def test_dask_workers_write_the_same_store(tmp_path, folder):
    serial = run(config(tmp_path, folder))
    cfg = config(tmp_path, folder, out=str(tmp_path / "dask.zarr"), workers=2)
    parallel = run(cfg)
    cols = ["track_id", "status", "frames", "checksum"]
    assert serial.tracks.select(cols).sort("track_id").equals(parallel.tracks.select(cols).sort("track_id"))


def test_features_that_overflow_float16_fail_that_track_only(tmp_path, folder, monkeypatch):
    from mrnet.extract.engines import MelEngine

    real = MelEngine.extract
    monkeypatch.setattr(
        MelEngine,
        "extract",
        lambda self, tracks: [x * (1e6 if i == 0 else 1) for i, x in enumerate(real(self, tracks))],
    )
    tracks = run(config(tmp_path, folder)).tracks
    bad = tracks.filter(pl.col("error").str.contains("not finite", literal=True))
    assert bad.height >= 1 and "--dtype float32" in bad["error"][0]
    assert (tracks["status"] == "done").sum() == 6 - bad.height


def test_workers_receive_the_typed_config_and_it_survives_pickling(tmp_path, folder):
    """Dask sends the unit context to workers by pickle: the typed ExtractConfig goes as it is."""
    import pickle

    from mrnet.extract.pipeline import provenance, run_engine, scan_dataset
    from mrnet.extract.worker import UnitContext
    from mrnet.store import Location

    cfg = config(tmp_path, folder)
    found = scan_dataset(cfg)
    ctx = UnitContext(
        cfg, str(found.root), found.source, Location.parse(cfg.store), provenance(run_engine(cfg, found), cfg, found)
    )
    again = pickle.loads(pickle.dumps(ctx))
    assert again == ctx and isinstance(again.config, ExtractConfig) and again.config.features == "mel"
    assert ExtractConfig.from_json(cfg.to_json()) == cfg


def test_a_file_too_short_for_a_frame_fails_alone_and_the_run_finishes(tmp_path, folder):
    """A one-sample WAV used to raise inside the Mel transform and stop every run; now it is one failed track."""
    sf.write(folder / "calm" / "one-sample.wav", np.zeros(1, np.float32), 16000)
    sf.write(folder / "loud" / "two-samples.wav", np.zeros(2, np.float32), 16000)
    tracks = run(config(tmp_path, folder)).tracks
    short = tracks.filter(pl.col("path").is_in(["calm/one-sample.wav", "loud/two-samples.wav"])).sort("path")
    assert short["status"].to_list() == ["failed", "failed"]
    assert all("too short for one Mel frame" in e for e in short["error"].to_list())
    assert (tracks["status"] == "done").sum() == 6  # the good files, as without them


def test_an_mp3_cut_short_is_kept_but_marked_and_listed(tmp_path, folder):
    """An MP3 truncated to half its bytes decodes 2.4 s of the 5 s its header declares: it used to be
    stored as done with no word. It is kept (done), with a warning users can filter on."""
    t = np.arange(5 * 44100) / 44100
    sf.write(tmp_path / "full.mp3", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 44100, format="MP3")
    data = (tmp_path / "full.mp3").read_bytes()
    (folder / "calm" / "cut.mp3").write_bytes(data[: len(data) // 2])
    summary = run(config(tmp_path, folder))
    cut = summary.tracks.filter(pl.col("path") == "calm/cut.mp3").row(0, named=True)
    assert cut["status"] == "done" and "of the 5.0 s the file declares" in cut["warning"]
    assert summary.warned["path"].to_list() == ["calm/cut.mp3"]
    assert summary.tracks.filter(pl.col("path") != "calm/cut.mp3")["warning"].null_count() == summary.tracks.height - 1
    assert FeatureStore.open(config(tmp_path, folder).store).tracks.filter(pl.col("warning").is_not_null()).height == 1


def test_a_labels_table_keeps_its_own_columns_in_the_manifest(tmp_path):
    """title and album (a CSV's own columns) ride along in the tracks manifest as meta_title and meta_album,
    text, through extraction, a second run over the same store, and the store's reader."""
    root = make_audio_folder(tmp_path / "music", bad=False)
    table = tmp_path / "labels.csv"
    rows = [
        (f"{g}/{g}{i:02d}.wav", g, f"Song {g} {i}", 'Ünïcode, "quoted"' if i else "")
        for g in ("calm", "loud")
        for i in range(3)
    ]
    pl.DataFrame(rows, schema=["path", "genre", "title", "album"], orient="row").write_csv(table)
    cfg = config(tmp_path, root, labels=table)
    run(cfg)
    tracks = FeatureStore.open(cfg.store).tracks
    assert tracks.columns == [*TRACKS.names(), "meta_title", "meta_album"]
    assert (
        tracks.schema["meta_title"] == pl.String
        and tracks.select(pl.all().exclude("meta_title", "meta_album")).schema == TRACKS
    )
    got = {r["path"]: (r["meta_title"], r["meta_album"]) for r in tracks.iter_rows(named=True)}
    assert got == {path: (title, album) for path, _, title, album in rows}
    assert pl.read_parquet(tmp_path / "manifests" / "folder" / "tracks.parquet").equals(tracks)
    run(cfg)  # the same command again (nothing left to do) keeps them
    assert FeatureStore.open(cfg.store).tracks.equals(tracks)
