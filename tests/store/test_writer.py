"""Opening a store for writing: nothing mrnet did not write is ever deleted, and resumes start clean."""

from __future__ import annotations

import numpy as np
import pytest

from mrnet.core.errors import UserError
from mrnet.core.files import TEMP_MARK
from mrnet.store import FeatureStore, Location, Provenance, StoreWriter
from mrnet.store.writer import ROOT_BACKUP
from tests.helpers import make_store

PROV = Provenance(
    feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1, extraction={"chunk_frames": 100, "codec": "none"}
)


def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path):
    folder = tmp_path / "thesis"
    (folder / "chapters").mkdir(parents=True)
    (folder / "draft.tex").write_text("years of work")
    (folder / "chapters" / "one.tex").write_text("more work")
    before = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    for overwrite in (False, True):
        with pytest.raises(
            UserError,
            match=r"is not empty and is not an mrnet store \(it holds chapters, draft.tex\); nothing there is touched",
        ):
            StoreWriter.open(Location.parse(folder), PROV, overwrite=overwrite)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == before
    assert (folder / "draft.tex").read_text() == "years of work"


def test_overwrite_removes_only_the_stores_own_parts_and_refuses_a_store_holding_other_files(tmp_path):
    store = make_store(tmp_path / "s.zarr", per_genre=1)
    (store / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"holds files mrnet did not write \(it holds notes.txt\)"):
        StoreWriter.open(Location.parse(store), PROV, overwrite=True)
    assert FeatureStore.open(store).tracks.height == 3  # untouched
    (store / "notes.txt").unlink()
    with StoreWriter.open(Location.parse(store), PROV, overwrite=True) as writer:
        assert writer.journal().height == 0
    assert FeatureStore.open(store).tracks.height == 0 and not FeatureStore.open(store).finalized


def test_a_store_without_its_root_metadata_is_refused_with_the_repair_command(tmp_path):
    store = make_store(tmp_path / "s.zarr", per_genre=1)
    (store / "zarr.json").unlink()  # an interrupted copy, or damage: the finished tracks must survive
    with pytest.raises(
        UserError, match=r"holds store data but no root zarr.json.*mrnet-store cp again.*mrnet-store repair"
    ):
        StoreWriter.open(Location.parse(store), PROV)
    assert (store / "features").is_dir() and len(list((store / "features").iterdir())) == 4  # 3 tracks + group


def test_a_resumed_writer_removes_a_killed_writers_temporary_files(tmp_path):
    store = make_store(tmp_path / "s.zarr", per_genre=1)
    leftovers = [
        store / f"zarr.json{TEMP_MARK}0badf00d",
        store / "features" / "calm.000" / "c" / "0" / "0" / "0" / f"0{TEMP_MARK}12345678",
    ]
    for path in leftovers:
        path.write_bytes(b"half a file")
    (store / "features" / "notes.tmp").write_text("not ours: a name mrnet never makes")
    with StoreWriter.open(Location.parse(store), FeatureStore.open(store).provenance):
        pass
    assert not any(p.exists() for p in leftovers) and (store / "features" / "notes.tmp").exists()


def test_a_new_store_keeps_a_copy_of_its_root(tmp_path):
    with StoreWriter.open(Location.parse(tmp_path / "n.zarr"), PROV) as writer:
        writer.write_track("t", np.ones((1, 1, 10, 48)))
    assert (tmp_path / "n.zarr" / ROOT_BACKUP).read_bytes() == (tmp_path / "n.zarr" / "zarr.json").read_bytes()


# --- one work unit: tracks, their sums, then the journal -------------------------------------------
def _row(track_id: str, split: str = "train") -> dict:
    return dict(
        track_id=track_id, key=track_id, path=f"g/{track_id}.wav", genre="g", genres_all=["g"], split=split, label=0
    )


def test_write_unit_stores_tracks_sums_and_journal_and_returns_what_it_stored(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from mrnet.store import statistics

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1, 1, 30, 48)).astype(np.float32), rng.normal(size=(1, 1, 20, 48)).astype(np.float32)
    groups = [
        [(_row("a"), a), (_row("bad"), ValueError("too short"))],
        [(_row("b", "test"), b), (_row("big"), np.full((1, 1, 5, 48), 1e6))],
    ]
    with StoreWriter.open(Location.parse(tmp_path / "s.zarr"), PROV) as writer, ThreadPoolExecutor(2) as pool:
        stored = writer.write_unit("u0", iter(groups), pool=pool)
        journal = writer.journal()
    assert [(r["track_id"], r["status"]) for r in stored.rows] == [
        ("a", "done"),
        ("bad", "failed"),
        ("b", "done"),
        ("big", "failed"),
    ]
    assert stored.rows[1]["error"] == "too short" and "not finite in float16" in stored.rows[3]["error"]
    assert (stored.unit, stored.frames, stored.bytes_written) == ("u0", 50, 50 * 48 * 2)
    assert journal.sort("track_id").select("track_id", "status").rows() == [
        ("a", "done"),
        ("b", "done"),
        ("bad", "failed"),
        ("big", "failed"),
    ]
    loc = Location.parse(tmp_path / "s.zarr")
    groups_of_tracks = statistics.combine_units(loc, journal)[0]
    train, test = (statistics.group_key(split, None, True) for split in ("train", "test"))
    assert set(groups_of_tracks) == {train, test} and (groups_of_tracks[train].count, groups_of_tracks[test].count) == (
        30,
        20,
    )


def test_write_unit_journals_nothing_when_the_sums_cannot_be_written(tmp_path, monkeypatch):
    """Statistics before the journal: a unit whose sums are lost is not journaled, so a rerun redoes it."""
    from mrnet.store import statistics

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(statistics, "write_unit", fail)
    with StoreWriter.open(Location.parse(tmp_path / "s.zarr"), PROV) as writer:
        with pytest.raises(OSError, match="disk full"):
            writer.write_unit("u0", [[(_row("a"), np.zeros((1, 1, 3, 48), np.float32))]])
        assert writer.journal().height == 0
    assert (tmp_path / "s.zarr" / "features" / "a").is_dir()  # written, and named by no journal: a rerun rewrites it
