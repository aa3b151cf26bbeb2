"""Opening a store for writing: nothing mrnet did not write is ever deleted, and resumes start clean."""

from __future__ import annotations

import numpy as np
import pytest

from mrnet.core.errors import UserError
from mrnet.core.files import TEMP_MARK
from mrnet.store import FeatureStore, Location, Provenance, StoreWriter
from mrnet.store.writer import ROOT_BACKUP
from tests.helpers import make_store

PROV = Provenance(feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1, extraction={"chunk_frames": 100, "codec": "none"})


def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path):
    folder = tmp_path / "thesis"
    (folder / "chapters").mkdir(parents=True)
    (folder / "draft.tex").write_text("years of work")
    (folder / "chapters" / "one.tex").write_text("more work")
    before = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    for overwrite in (False, True):
        with pytest.raises(UserError, match=r"is not empty and is not an mrnet store \(it holds chapters, draft.tex\); nothing there is touched"):
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
    with pytest.raises(UserError, match=r"holds store data but no root zarr.json.*mrnet-store cp again.*mrnet-store repair"):
        StoreWriter.open(Location.parse(store), PROV)
    assert (store / "features").is_dir() and len(list((store / "features").iterdir())) == 4  # 3 tracks + group


def test_a_resumed_writer_removes_a_killed_writers_temporary_files(tmp_path):
    store = make_store(tmp_path / "s.zarr", per_genre=1)
    leftovers = [store / f"zarr.json{TEMP_MARK}0badf00d", store / "features" / "calm.000" / "c" / "0" / "0" / "0" / f"0{TEMP_MARK}12345678"]
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
