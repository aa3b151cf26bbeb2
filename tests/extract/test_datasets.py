"""Each dataset reader against a miniature copy in the published layout, and every error a user can meet."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from mrnet.core.errors import UserError
from mrnet.extract.datasets import DATASET_NAMES, Scan, demo, scan
from mrnet.manifests.schema import GENRES, TRACKS
from mrnet.store.format import track_key
from tests.extract.fixtures import (
    FMA_TRACKS,
    GTZAN_GENRES,
    MELON_SONGS,
    fma_audio_path,
    make_fma,
    make_folder,
    make_gtzan,
    make_melon,
    make_mtat,
)


def _check_contract(s: Scan) -> None:
    """What every scan promises: declared schemas, keys from ids, labels from the genre table, nothing extracted."""
    assert s.tracks.schema == TRACKS and s.genres.schema == GENRES
    assert s.tracks["key"].to_list() == [track_key(t) for t in s.tracks["track_id"]]
    assert s.tracks["track_id"].is_unique().all()
    ids = dict(zip(s.genres["name"], s.genres["id"]))
    assert s.tracks["label"].to_list() == [ids[g] for g in s.tracks["genre"]]
    for column in ("duration", "sample_rate", "channels", "frames", "checksum"):
        assert s.tracks[column].null_count() == s.tracks.height
    assert set(s.tracks["status"]) <= {"pending", "failed"}
    assert (s.tracks["status"] == "failed").sum() == s.tracks["error"].is_not_null().sum()
    assert (s.tracks["split"].is_null() ^ s.tracks["fold"].is_null()).all()  # exactly one of split / fold


def test_dataset_names_are_the_contract():
    assert DATASET_NAMES == ("gtzan", "fma_small", "fma_medium", "fma_large", "melon", "mtat", "folder", "demo", "hf")


# -- GTZAN -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout, ext", [("genres_original", ".wav"), ("genres", ".au")])
def test_gtzan_both_layouts(tmp_path, layout, ext):
    root = make_gtzan(tmp_path, layout, per_genre=10, seconds=0.05)
    s = scan("gtzan", root)
    _check_contract(s)
    assert (s.name, s.source, s.labeling, s.root) == ("gtzan", "audio", "genre", tmp_path.resolve())
    assert s.tracks.height == 100
    assert s.tracks["track_id"][:2].to_list() == ["blues.00000", "blues.00001"]
    assert s.tracks["path"][0] == f"{layout}/blues/blues.00000{ext}"
    assert s.tracks["artist"].null_count() == 100 and s.tracks["genres_all"][0].to_list() == ["blues"]
    assert s.genres["name"].to_list() == list(GTZAN_GENRES)
    # stratified 10-fold: one clip of each genre in every fold
    per = s.tracks.group_by("fold", "genre").len()
    assert per.height == 100 and per["len"].max() == 1
    assert (s.tracks["status"] == "pending").all()


def test_gtzan_root_may_be_the_genres_folder_itself(tmp_path):
    make_gtzan(tmp_path, "genres", per_genre=1, seconds=0.05)
    s = scan("gtzan", tmp_path / "genres")
    assert s.root == (tmp_path / "genres").resolve()
    assert s.tracks["path"][0] == "blues/blues.00000.au"


def test_gtzan_folds_follow_the_seed(tmp_path):
    root = make_gtzan(tmp_path, per_genre=4, seconds=0.05)
    a, b, c = (
        scan("gtzan", root, seed=1, folds=4),
        scan("gtzan", root, seed=1, folds=4),
        scan("gtzan", root, seed=2, folds=4),
    )
    assert a.tracks["fold"].to_list() == b.tracks["fold"].to_list() != c.tracks["fold"].to_list()
    assert a.tracks["fold"].max() == 3


def test_gtzan_corrupt_jazz_00054_is_listed_and_noted(tmp_path):
    root = make_gtzan(tmp_path, per_genre=0, seconds=0.05, indices=[0, 54])
    assert not (root / "genres_original/jazz/jazz.00054.wav").read_bytes().startswith(b"RIFF")
    s = scan("gtzan", root)
    row = s.tracks.filter(pl.col("track_id") == "jazz.00054").row(0, named=True)
    assert row["path"] == "genres_original/jazz/jazz.00054.wav" and row["status"] == "pending"
    assert any("jazz.00054.wav is a known bad file" in n for n in s.notes)


def test_gtzan_ignores_stray_files_and_says_so(tmp_path):
    root = make_gtzan(tmp_path, per_genre=1, seconds=0.05)
    (root / "genres_original/blues/notes.txt").write_text("x")
    (root / "genres_original/blues/blues.1.wav").write_bytes(b"")
    s = scan("gtzan", root)
    assert s.tracks.height == 10
    assert any("2 files in the genre folders are not GTZAN clip names" in n for n in s.notes)


def test_gtzan_split_files_like_the_fault_filtered_lists(tmp_path):
    root = make_gtzan(tmp_path, per_genre=3, seconds=0.05)
    lists = tmp_path / "ff"
    lists.mkdir()
    (lists / "train.txt").write_text("blues/blues.00000.au\nblues/blues.00001.au\njazz/jazz.00000.au\n")
    (lists / "valid.txt").write_text("blues/blues.00002.au\n")
    (lists / "test.txt").write_text("jazz/jazz.00001.au\nrock/rock.00099.au\n")
    s = scan("gtzan", root, split_files=lists)
    _check_contract(s)
    assert dict(s.tracks.select("track_id", "split").iter_rows()) == {
        "blues.00000": "train",
        "blues.00001": "train",
        "jazz.00000": "train",
        "blues.00002": "valid",
        "jazz.00001": "test",
    }
    assert s.genres["name"].to_list() == ["blues", "jazz"]  # the genre table covers the kept tracks
    assert any("1 lines match no track" in n for n in s.notes)
    assert any("25 tracks are in none of the list files" in n for n in s.notes)


def test_gtzan_fold_files(tmp_path):
    root = make_gtzan(tmp_path, per_genre=2, seconds=0.05)
    files = [tmp_path / "f0.txt", tmp_path / "f1.txt"]
    files[0].write_text("\n".join(f"genres_original/{g}/{g}.00000.wav" for g in GTZAN_GENRES))
    files[1].write_text("\n".join(f"{g}.00001.wav" for g in GTZAN_GENRES))
    s = scan("gtzan", root, fold_files=files)
    assert s.tracks.group_by("fold").len().sort("fold")["len"].to_list() == [10, 10]
    assert s.tracks.filter(pl.col("track_id") == "rock.00001")["fold"][0] == 1


def test_gtzan_wrong_layout(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(
        UserError, match=r"no genres or genres_original folder under .*: expected the GTZAN layout ROOT/genres/<genre>"
    ):
        scan("gtzan", tmp_path)
    (tmp_path / "genres_original" / "blues").mkdir(parents=True)
    with pytest.raises(UserError, match="no GTZAN clips under"):
        scan("gtzan", tmp_path)


# -- FMA -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fma(tmp_path_factory):
    """One FMA miniature per subset, made once for the module (scans only read it)."""
    return {
        subset: make_fma(tmp_path_factory.mktemp(f"fma_{subset}"), subset) for subset in ("small", "medium", "large")
    }


def _fma_expected(subset: str, *, top: bool = True) -> list:
    levels = ("small", "medium", "large")
    return [
        t for t in FMA_TRACKS if levels.index(t.subset) <= levels.index(subset) and (t.genre_top if top else t.genres)
    ]


@pytest.mark.parametrize("subset", ["small", "medium", "large"])
def test_fma_subsets_are_nested_and_keep_the_official_split(fma, subset):
    root = fma[subset]
    s = scan(f"fma_{subset}", root)
    _check_contract(s)
    expected = _fma_expected(subset)
    assert (s.name, s.labeling, s.source) == (f"fma_{subset}", "top", "audio")
    assert s.tracks["track_id"].to_list() == [f"{t.track_id:06d}" for t in expected]
    assert s.tracks["path"].to_list() == [fma_audio_path(t.track_id, subset) for t in expected]
    assert s.tracks["genre"].to_list() == [t.genre_top for t in expected]
    assert s.tracks["artist"].to_list() == [str(t.artist) for t in expected]  # parsed past the multi-line, quoted bio
    splits = {"training": "train", "validation": "valid", "test": "test"}
    assert s.tracks["split"].to_list() == [splits[t.split] for t in expected]
    assert s.tracks["fold"].null_count() == s.tracks.height


def test_fma_track_ids_paths_and_genres_all(fma):
    s = scan("fma_small", fma["small"])
    row = s.tracks.filter(pl.col("track_id") == "000182").row(0, named=True)
    assert row["path"] == "fma_small/000/000182.mp3"
    assert row["genres_all"] == ["Rock", "Punk"]
    assert s.tracks.filter(pl.col("track_id") == "098565")["path"][0] == "fma_small/098/098565.mp3"


def test_fma_missing_audio_fails_that_track_only(fma):
    s = scan("fma_small", fma["small"])
    failed = s.tracks.filter(pl.col("status") == "failed")
    assert failed["track_id"].to_list() == ["000020"]
    assert failed["error"][0] == f"file not found: {fma['small'].resolve().as_posix()}/fma_small/000/000020.mp3"
    assert any("1 of 10 tracks are marked failed before extraction" in n for n in s.notes)


def test_fma_known_bad_files_are_kept_and_noted(fma):
    root = fma["small"]
    assert (root / "fma_small/133/133297.mp3").stat().st_size == 1752
    assert sf.info(str(root / "fma_small/098/098565.mp3")).duration < 0.1
    s = scan("fma_small", root)
    bad = s.tracks.filter(pl.col("track_id").is_in(["098565", "133297"]))
    assert bad["status"].to_list() == ["pending", "pending"]
    assert any("098565 (much shorter than 30 s), 133297 (contains no audio" in n for n in s.notes)


def test_fma_top_labeling_drops_tracks_without_genre_top(fma):
    s = scan("fma_large", fma["large"])
    assert "000255" not in s.tracks["track_id"].to_list()
    assert any("2 of 15 tracks of fma_large have no track.genre_top" in n for n in s.notes)
    assert s.genres["name"].to_list() == ["Electronic", "Experimental", "Folk", "Hip-Hop", "Pop", "Rock"]


def test_fma_all_labeling_uses_the_first_listed_genre(fma):
    s = scan("fma_large", fma["large"], labeling="all")
    _check_contract(s)
    genre = dict(s.tracks.select("track_id", "genre").iter_rows())
    assert genre["000020"] == "Experimental Pop"  # track.genres = [76, 10]: first listed, not the root
    assert genre["000255"] == "Rock"  # no genre_top, still labelled under "all"
    assert genre["000182"] == "Punk"
    assert "000256" not in genre  # empty track.genres
    assert any("1 of 15 tracks of fma_large have an empty track.genres list" in n for n in s.notes)
    assert s.labeling == "all"


def test_fma_duplicate_audio_is_kept(fma):
    root = fma["large"]
    assert (root / "fma_large/000/000003.mp3").read_bytes() == (root / "fma_large/000/000002.mp3").read_bytes()
    kept = scan("fma_large", root).tracks.filter(pl.col("track_id").is_in(["000002", "000003"]))
    assert kept["status"].to_list() == ["pending", "pending"]


def test_fma_layout_errors(tmp_path):
    with pytest.raises(
        UserError,
        match=r"no tracks.csv at .*fma_metadata/tracks.csv: expected the FMA layout .*fma_small/000/000002.mp3; pass --root pointing at the folder that contains fma_metadata",
    ):
        scan("fma_small", tmp_path)
    root = make_fma(tmp_path / "copy", "small")
    with pytest.raises(UserError, match=r"no fma_medium folder under .*copy: expected the FMA layout"):
        scan("fma_medium", root)
    (root / "fma_metadata/tracks.csv").write_text("track_id,title\n2,Food\n")
    with pytest.raises(UserError, match="does not start with the three FMA header lines"):
        scan("fma_small", root)


def test_fma_tracks_csv_without_a_needed_column(tmp_path):
    root = make_fma(tmp_path, "small")
    path = root / "fma_metadata/tracks.csv"
    path.write_text(path.read_text().replace("genre_top", "genre_main", 1))
    with pytest.raises(UserError, match="no column track.genre_top"):
        scan("fma_small", root)


def test_fma_bad_metadata_values(tmp_path):
    root = make_fma(tmp_path, "small")
    tracks = root / "fma_metadata/tracks.csv"
    tracks.write_text(tracks.read_text().replace(",validation,small,", ",dev,small,", 1))
    with pytest.raises(UserError, match="1 tracks of fma_small have a set.split other than training/validation/test"):
        scan("fma_small", root)
    (root / "fma_metadata/genres.csv").write_text("id,name\n1,Rock\n")
    with pytest.raises(
        UserError, match=r"genres.csv is not the FMA genres.csv \(genre_id,#tracks,parent,title,top_level\)"
    ):
        scan("fma_small", root)


# -- Melon -----------------------------------------------------------------------------------------


def test_melon_keeps_songs_with_one_major_genre(tmp_path):
    s = scan("melon", make_melon(tmp_path))
    _check_contract(s)
    kept = [m for m in MELON_SONGS if len(m.major) == 1]
    assert (s.name, s.source, s.labeling) == ("melon", "melon", "major")
    assert s.tracks["track_id"].to_list() == [str(m.id) for m in kept]
    assert s.tracks["path"].to_list() == [f"arena_mel/{m.id // 1000}/{m.id}.npy" for m in kept]
    assert s.tracks["genre"].to_list() == [m.major[0] for m in kept]
    assert s.tracks["genres_all"].to_list() == [m.detail for m in kept]
    assert s.tracks["artist"].to_list() == [str(m.artists[0]) if m.artists else None for m in kept]
    assert s.tracks.filter(pl.col("track_id") == "707988")["path"][0] == "arena_mel/707/707988.npy"
    assert any("2 of 11 songs have no or several major genres" in n for n in s.notes)
    assert np.load(tmp_path / "arena_mel/0/0.npy").shape == (48, 64)


def test_melon_missing_npy_fails_and_folds_keep_artists_together(tmp_path):
    s = scan("melon", make_melon(tmp_path), folds=3, seed=4)
    missing = s.tracks.filter(pl.col("status") == "failed")
    assert missing["track_id"].to_list() == ["6003"] and missing["error"][0].endswith("arena_mel/6/6003.npy")
    same_artist = s.tracks.filter(pl.col("artist") == "2727")
    assert same_artist.height == 3 and same_artist["fold"].n_unique() == 1
    assert s.tracks["split"].null_count() == s.tracks.height and s.tracks["fold"].max() <= 2


def test_melon_layout_errors(tmp_path):
    with pytest.raises(UserError, match=r"no song_meta.json at .*: expected the Melon Playlist Dataset layout"):
        scan("melon", tmp_path)
    root = make_melon(tmp_path / "m")
    (root / "genre_gn_all.json").write_text('["GN0100"]')
    with pytest.raises(UserError, match="should map genre codes to names"):
        scan("melon", root)
    (root / "genre_gn_all.json").write_text('{"GN0100": "x"}')
    (root / "arena_mel").rename(root / "mels")
    with pytest.raises(
        UserError,
        match=r"arena_mel does not exist: expected the Melon Playlist Dataset layout .*arena_mel/<id // 1000>/<id>.npy",
    ):
        scan("melon", root)
    (root / "song_meta.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read .*song_meta.json as the Melon song_meta.json"):
        scan("melon", root)


# -- folder ----------------------------------------------------------------------------------------


def test_folder_of_genre_folders(tmp_path):
    fx = make_folder(tmp_path, per_genre=4)
    (tmp_path / "readme.txt").write_text("not audio")
    (tmp_path / "stray.wav").write_bytes(b"")
    s = scan("folder", tmp_path, folds=2)
    _check_contract(s)
    assert sorted(s.tracks["path"]) == sorted(fx.paths)  # every format, .AU in upper case, a nested live/ folder
    assert s.tracks["track_id"].to_list()[:2] == ["calm/calm_0", "calm/calm_1"]
    assert s.tracks.filter(pl.col("path") == "calm/live/calm_3.mp3")["genre"][0] == "calm"
    assert s.tracks.group_by("fold", "genre").len()["len"].to_list() == [2] * 6
    assert any("1 audio files directly in" in n for n in s.notes)


def test_folder_labels_csv_with_split_and_missing_files(tmp_path):
    fx = make_folder(tmp_path, labels="csv", split=True, missing=1)
    s = scan("folder", tmp_path, labels=fx.labels)
    _check_contract(s)
    assert s.tracks.height == 13
    assert s.tracks.filter(pl.col("path") == "calm/calm_0.wav")["split"][0] == "test"
    assert s.tracks.group_by("split").len().sort("split").rows() == [("test", 3), ("train", 7), ("valid", 3)]
    gone = s.tracks.filter(pl.col("status") == "failed")
    assert gone["path"].to_list() == ["calm/gone_0.wav"] and "file not found" in gone["error"][0]


def test_folder_labels_parquet_groups_folds_by_artist(tmp_path):
    fx = make_folder(tmp_path, labels="parquet", per_genre=6)
    s = scan("folder", tmp_path, labels=fx.labels, folds=3)
    assert s.tracks["artist"].null_count() == 0
    assert s.tracks.group_by("artist").agg(pl.col("fold").n_unique())["fold"].max() == 1
    assert s.tracks.group_by("fold", "genre").len()["len"].to_list() == [2] * 9


def test_folder_labels_table_with_folds(tmp_path):
    make_folder(tmp_path, per_genre=2)
    table = tmp_path / "t.csv"
    table.write_text("path,genre,fold\ncalm/calm_0.wav,calm,0\ncalm/live/calm_1.flac,calm,1\nloud/loud_0.flac,loud,1\n")
    s = scan("folder", tmp_path, labels=table)
    assert s.tracks.select("track_id", "fold").rows() == [
        ("calm/calm_0", 0),
        ("calm/live/calm_1", 1),
        ("loud/loud_0", 1),
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,genre\na.wav,rock\n", r"columns must be path and genre.*missing \['path'\]"),
        ("path,genre,status,key\na.wav,rock,sad,k\n", r"\['status', 'key'\] would stand for a manifest column"),
        ("path,genre,tags\na.wav,rock,x\n", r"\['tags'\] would stand for a manifest column"),
        ("path,genre,split,fold\na.wav,rock,train,0\n", "has both split and fold columns"),
        ("path,genre,split\na.wav,rock,dev\n", "split must be train, valid or test; found 'dev'"),
        ("path,genre,fold\na.wav,rock,x\n", "fold must be an integer"),
        ("path,genre\n/abs/a.wav,rock\n", "paths must be relative to --root"),
        ("path,genre\na.wav,rock\na.wav,rock\n", "listed more than once"),
        ("path,genre\na.wav,\n", r"1 rows have no genre \(first: data row 1\)"),
        ("path,genre\n", "the table has no rows"),
    ],
)
def test_folder_labels_table_errors(tmp_path, content, message):
    table = tmp_path / "labels.csv"
    table.write_text(content)
    with pytest.raises(UserError, match=message):
        scan("folder", tmp_path, labels=table)


def test_folder_errors(tmp_path):
    with pytest.raises(
        UserError, match=r"no audio files in genre folders under .*: expected ROOT/<genre>/<name>.*or pass --labels"
    ):
        scan("folder", tmp_path)
    with pytest.raises(UserError, match=r"no labels.xlsx at"):
        scan("folder", tmp_path, labels=tmp_path / "labels.xlsx")
    (tmp_path / "labels.xlsx").write_text("x")
    with pytest.raises(UserError, match="unknown table format '.xlsx'; use .csv or .parquet"):
        scan("folder", tmp_path, labels=tmp_path / "labels.xlsx")


def test_folder_unsupported_extension_fails_that_track(tmp_path):
    make_folder(tmp_path, per_genre=2)
    (tmp_path / "calm/x.m4a").write_bytes(b"")
    table = tmp_path / "t.csv"
    table.write_text("path,genre\ncalm/calm_0.wav,calm\ncalm/x.m4a,calm\n")
    s = scan("folder", tmp_path, labels=table)
    assert s.tracks.select("status", "error").rows() == [
        ("pending", None),
        ("failed", "unsupported audio format: calm/x.m4a"),
    ]


# -- demo ------------------------------------------------------------------------------------------


def _measures(x: np.ndarray, sr: int = 16000) -> tuple[float, float, float]:
    """Spectral centroid (Hz), spectral flux over octave bands, and share of power below 150 Hz."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::256] * np.hanning(512)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / sr)
    octaves = np.abs(np.log2((freqs[:, None] + 1) / 2.0 ** np.arange(5, 13))) < 0.5
    flux = np.maximum(np.diff(np.log(power @ octaves + 1e-9), axis=0), 0).sum(axis=1).mean()
    return float((power @ freqs).sum() / power.sum()), float(flux), float(power[:, freqs < 150].sum() / power.sum())


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    return demo.generate(tmp_path_factory.mktemp("d") / "demo", per_genre=5, seconds=3.0)


def test_demo_layout_and_split(small_demo):
    labels = pl.read_csv(small_demo / "labels.csv")
    assert labels.columns == ["path", "genre", "split"]
    assert labels["path"][:2].to_list() == ["ambient/ambient.000.wav", "ambient/ambient.001.wav"]
    assert labels.group_by("genre", "split").len().sort("genre", "split")["len"].to_list() == [1, 3, 1] * 4
    info = sf.info(str(small_demo / "drums/drums.004.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 48000, "PCM_16")
    assert demo.split_counts(30) == (18, 6, 6)


def test_demo_scans_through_the_folder_reader(small_demo, monkeypatch):
    monkeypatch.setenv("MRNET_DEMO_DIR", str(small_demo))
    s = scan("demo", None)
    _check_contract(s)
    assert (s.name, s.root, s.source) == ("demo", small_demo.resolve(), "audio")
    assert s.genres["name"].to_list() == list(demo.GENRES)
    assert s.tracks.height == 20 and (s.tracks["status"] == "pending").all()
    assert set(s.tracks["split"]) == {"train", "valid", "test"}


def test_demo_is_deterministic_and_reused(tmp_path, small_demo):
    again = demo.generate(tmp_path / "again", per_genre=5, seconds=3.0)
    for path in sorted(p.relative_to(small_demo) for p in small_demo.rglob("*.wav")):
        assert (again / path).read_bytes() == (small_demo / path).read_bytes(), path
    assert (again / "labels.csv").read_text() == (small_demo / "labels.csv").read_text()
    before = (again / "labels.csv").stat().st_mtime_ns
    assert demo.generate(again) == again and (again / "labels.csv").stat().st_mtime_ns == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="exists but is not a complete mrnet demo"):
        scan("demo", tmp_path)


def test_demo_default_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MRNET_DEMO_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert demo.default_root() == tmp_path / ".cache/mrnet/demo-v1"


def test_demo_genres_differ_measurably(small_demo):
    by_genre = {
        g: np.array([_measures(sf.read(p, dtype="float32")[0]) for p in sorted((small_demo / g).glob("*.wav"))]).mean(
            axis=0
        )
        for g in demo.GENRES
    }
    centroid, flux, low = (dict(zip(by_genre, v)) for v in np.array(list(by_genre.values())).T)
    assert centroid["drums"] > 2 * centroid["ambient"] and centroid["arpeggio"] > centroid["ambient"]
    assert flux["ambient"] < 0.85 * min(flux["arpeggio"], flux["drums"], flux["groove"])  # no onsets
    assert min(low["drums"], low["groove"]) > 0.4 > 0.2 > max(low["ambient"], low["arpeggio"])  # kicks and bass


# -- options ---------------------------------------------------------------------------------------


def test_option_errors(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'fma': choose one of gtzan, fma_small"):
        scan("fma", tmp_path)
    with pytest.raises(UserError, match="--root is required for gtzan"):
        scan("gtzan", None)
    with pytest.raises(UserError, match=r"--root .*nowhere does not exist"):
        scan("gtzan", tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file"):
        scan("melon", tmp_path / "file")
    with pytest.raises(UserError, match="--labeling 'all' does not apply to gtzan: choose genre"):
        scan("gtzan", tmp_path, labeling="all")
    with pytest.raises(UserError, match="--labeling 'genre' does not apply to fma_small: choose top or all"):
        scan("fma_small", tmp_path, labeling="genre")
    with pytest.raises(UserError, match="--labels applies to the folder dataset only"):
        scan("gtzan", tmp_path, labels=tmp_path / "x.csv")
    with pytest.raises(UserError, match="--split-files and --fold-files both given"):
        scan("gtzan", tmp_path, split_files=tmp_path, fold_files=[tmp_path])
    with pytest.raises(UserError, match="--folds 1: k-fold cross-validation needs at least 2 folds"):
        scan("gtzan", tmp_path, folds=1)


# --- containment: every dataset path stays inside --root ----------------------------------------------
@pytest.mark.parametrize("path", ["../../outside/song.wav", "rock/../../song.wav", "rock/./../../song.wav"])
def test_labels_paths_that_leave_the_root_are_refused(tmp_path, path):
    root, outside = tmp_path / "music", tmp_path / "outside"
    (root / "rock").mkdir(parents=True)
    outside.mkdir()
    sf.write(outside / "song.wav", np.zeros(1600, np.float32), 16000)
    table = tmp_path / "labels.csv"
    table.write_text(f"path,genre\n{path},rock\n")
    with pytest.raises(UserError, match=r"paths lead outside --root .*e\.g\. '.*song\.wav'"):
        scan("folder", root, labels=table)


def test_a_labels_path_through_a_link_out_of_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "music", tmp_path / "elsewhere"
    (root / "rock").mkdir(parents=True)
    outside.mkdir()
    sf.write(outside / "song.wav", np.zeros(1600, np.float32), 16000)
    (root / "rock" / "linked").symlink_to(outside)
    table = tmp_path / "labels.csv"
    table.write_text("path,genre\nrock/linked/song.wav,rock\n")
    with pytest.raises(UserError, match="rock/linked/song.wav"):
        scan("folder", root, labels=table)
    (root / "rock" / "inside.wav").symlink_to(root / "rock" / "..")  # a link that stays inside is fine to list
    table.write_text("path,genre\nrock/inside.wav,rock\n")
    assert scan("folder", root, labels=table).tracks.height == 1


def test_fma_track_ids_must_be_numbers(tmp_path):
    root = make_fma(tmp_path / "fma")
    tracks = root / "fma_metadata" / "tracks.csv"
    lines = tracks.read_text().splitlines()
    lines[3] = "../../etc" + lines[3][lines[3].index(",") :]
    tracks.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"track_id values are not numbers of up to 6 digits, e\.g\. '\.\./\.\./etc'"):
        scan("fma_small", root)


def test_symlink_loops_and_doubles_list_each_real_file_once_under_its_real_genre(tmp_path):
    """rock/up -> .. made 4 files into 123 tracks (wrong genres, split across folds); two self-links
    hung the scan. Each real file is listed once, under its real path, and the links are named."""
    root = tmp_path / "music"
    for genre in ("jazz", "rock"):
        (root / genre).mkdir(parents=True)
        for i in range(2):
            sf.write(root / genre / f"{genre}{i}.wav", np.zeros(1600, np.float32), 16000)
    (root / "rock" / "up").symlink_to("..")  # a loop back to the root
    (root / "jazz" / "again.wav").symlink_to("../rock/rock0.wav")  # a second way to a file
    (root / "rock" / "self").symlink_to("self")  # a self-referencing link
    (root / "rock" / "a").symlink_to("b")
    (root / "rock" / "b").symlink_to("a")
    (root / "jazz" / "away").symlink_to(tmp_path)  # out of the root, to the folder that holds it: followed, and a loop
    s = scan("folder", root, folds=2)
    assert sorted(s.tracks["path"].to_list()) == [
        "jazz/jazz0.wav",
        "jazz/jazz1.wav",
        "rock/rock0.wav",
        "rock/rock1.wav",
    ]
    assert dict(zip(s.tracks["path"], s.tracks["genre"]))["rock/rock0.wav"] == "rock"
    notes = " | ".join(s.notes)
    assert "links to folders already scanned" in notes and "rock/up" in notes
    assert "listed once" in notes and "jazz/again.wav" in notes
    assert "self-referencing links are skipped" in notes and "rock/self" in notes
    assert "jazz/away/music" in notes


# -- MagnaTagATune -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mtat(tmp_path_factory):
    return make_mtat(tmp_path_factory.mktemp("mtat"))


def test_mtat_is_a_multi_label_manifest_with_the_hex_folder_split(mtat):
    s = scan("mtat", mtat, tags="16")
    assert (s.name, s.task, s.labeling, s.source) == ("mtat", "multi-label", "top16", "audio")
    t = s.tracks
    assert t["genre"].null_count() == t.height and t["label"].null_count() == t.height
    splits = dict(zip(t["path"].str.slice(0, 1), t["split"]))
    assert {d: splits[d] for d in "0bcdf"} == {"0": "train", "b": "train", "c": "valid", "d": "test", "f": "test"}
    first = t.filter(pl.col("track_id") == "0").row(0, named=True)
    assert set(first["tags"]) == {"classical", "strings", "violin", "slow", "male"} and first["artist"] == "artist0"
    counts = dict(zip(s.genres["name"], s.genres["count"]))
    assert (
        s.genres.schema == GENRES and s.genres.height == 16 and counts["male"] == 16
    )  # 'male' (16 clips) beats a style tag (12)
    assert counts["slow"] == 13 and sum(c == 12 for c in counts.values()) == 14  # the broken clip is slow too


def test_mtat_keeps_the_n_most_frequent_tags_and_drops_untagged_clips_unless_asked(mtat):
    top = scan("mtat", mtat, tags="4")
    assert top.genres["name"].to_list() == sorted(top.genres["name"].to_list()) and top.genres.height == 4
    assert "9999" not in top.tracks["track_id"].to_list() and any("left out" in n for n in top.notes)
    kept = scan("mtat", mtat, tags="4", keep_untagged=True)
    untagged = kept.tracks.filter(pl.col("track_id") == "9999").row(0, named=True)
    assert untagged["tags"] == [] and untagged["genres_all"] == ["lol"]
    default = scan("mtat", mtat)
    assert default.labeling == "top50" and default.genres.height == 50  # tags no clip has fill the 50, in header order
    assert default.genres.filter(pl.col("count") == 0)["weight"].to_list() == [0.0] * (50 - 19)  # 19 tags are used


def test_mtat_records_the_known_broken_mp3_as_failed(mtat):
    t = scan("mtat", mtat).tracks
    broken = t.filter(pl.col("track_id") == "35644").row(0, named=True)
    assert broken["status"] == "failed" and "known broken MP3" in broken["error"]


def test_mtat_tag_list_file_and_bad_input(mtat, tmp_path):
    listed = tmp_path / "tags.txt"
    listed.write_text("# my tags\nguitar\nno voice\n")
    s = scan("mtat", mtat, tags=str(listed), keep_untagged=True)
    assert s.genres["name"].to_list() == ["guitar", "no voice"] and s.labeling == "tags:tags.txt"
    listed.write_text("guitar\nbanjolele\n")
    with pytest.raises(UserError, match=r"tags not in the annotations: \['banjolele'\]"):
        scan("mtat", mtat, tags=str(listed))
    with pytest.raises(UserError, match="--tags 500: choose between 1 and the 188 tags"):
        scan("mtat", mtat, tags="500")
    with pytest.raises(UserError, match="--tags and --keep-untagged apply to mtat"):
        scan("gtzan", mtat, tags="50")
    with pytest.raises(UserError, match="no annotations_final.csv at"):
        scan("mtat", tmp_path)


def test_a_folder_labels_table_with_tags_is_multi_label(tmp_path):
    fx = make_folder(tmp_path, per_genre=2)
    table = tmp_path / "tags.csv"
    rows = ["path,tags"] + [f"{p},{'loud;fast' if p.startswith('loud') else 'calm'}" for p in fx.paths[:4]]
    table.write_text("\n".join(rows) + "\n")
    s = scan("folder", tmp_path, labels=table, folds=2)
    assert s.task == "multi-label" and s.labeling == "tags" and s.genres["name"].to_list() == ["calm", "fast", "loud"]
    assert sorted(map(tuple, s.tracks["tags"].to_list())) == [("calm",), ("calm",), ("loud", "fast"), ("loud", "fast")]


def test_a_labels_table_keeps_the_users_own_columns_and_says_so(tmp_path):
    make_folder(tmp_path, per_genre=2)
    table = tmp_path / "t.csv"
    table.write_text("path,genre,title,album\ncalm/calm_0.wav,calm,Quiet,First\nloud/loud_0.flac,loud,Noisy,\n")
    s = scan("folder", tmp_path, labels=table, folds=2)
    assert s.tracks.columns == [*TRACKS.names(), "meta_title", "meta_album"]
    assert s.tracks.select("meta_title", "meta_album").rows() == [("Quiet", "First"), ("Noisy", None)]
    assert any("kept meta_title, meta_album in the tracks manifest" in n for n in s.notes)
