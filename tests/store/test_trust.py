"""A store is files mrnet wrote (issue 21, items 1-3 and 6): links are followed by nothing, writes never
go through a link out of the destination, a refused command changes nothing, ``--overwrite`` deletes only
what mrnet can show it wrote, and a store being written names its writer from the first file on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mrnet.core.errors import UserError
from mrnet.store import Location, Provenance, StoreWriter
from mrnet.store.cli import app
from mrnet.store.copy import copy_store
from mrnet.store.lock import LOCK, WriterLock
from mrnet.store.repair import repair_store
from tests.helpers import make_store


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder`` (links by target, folders as such), to compare before and after."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(dirpath, name)
            rel = str(path.relative_to(folder))
            found[rel] = (
                f"-> {os.readlink(path)}" if path.is_symlink() else "dir" if path.is_dir() else path.read_bytes()
            )
    return found


PROV = Provenance(
    feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1, extraction={"chunk_frames": 100, "codec": "none"}
)


# --- item 1: links inside a source store ----------------------------------------------------------------


def test_cp_refuses_a_source_store_holding_a_link_and_verify_names_it(runner, store, tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET_ACCESS_KEY=do-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak-either")
    shard_dir = next(Path(store, "features").glob("*/c/0/0/0"))
    (shard_dir / "README").symlink_to("/proc/self/environ")
    (Path(store) / "manifest" / "notes").symlink_to(secret)
    result = runner.invoke(app, ["cp", str(store), str(tmp_path / "copy.zarr")])
    assert (
        result.exit_code == 2
        and "symbolic link" in result.output
        and "README -> /proc/self/environ" in " ".join(result.output.split())
    )
    assert not (tmp_path / "copy.zarr").exists()
    leaked = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_symlink() and b"do-not-leak" in p.read_bytes() and p != secret
    ]
    assert leaked == []
    report = json.loads(runner.invoke(app, ["verify", str(store), "--json"]).output)
    named = " ".join(p["what"] for p in report["problems"])
    assert not report["ok"] and "README" in named and "manifest/notes" in named and "symbolic link" in named


def test_verify_names_every_file_the_format_does_not_explain(runner, store):
    (Path(store) / "features" / "extra.txt").write_text("x")
    (Path(store) / "todo.md").write_text("x")
    report = json.loads(runner.invoke(app, ["verify", str(store), "--json"]).output)
    named = [p["what"] for p in report["problems"]]
    assert any("features/extra.txt" in w for w in named) and any("todo.md" in w for w in named), named


def test_a_file_linked_in_after_the_check_is_not_followed(store, tmp_path, monkeypatch):
    """The source is read with O_NOFOLLOW: a link swapped in after the up-front check is still not followed."""
    from mrnet.store import copy as copy_mod

    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    real, swapped = copy_mod.copy_object, []

    def swap(src, dst, rel):
        if rel.endswith("c/0/0/0/0") and not swapped:
            Path(src.path(rel)).unlink()
            Path(src.path(rel)).symlink_to(secret)
            swapped.append(rel)
        return real(src, dst, rel)

    monkeypatch.setattr(copy_mod, "copy_object", swap)
    with pytest.raises(UserError, match="symbolic link"):
        copy_store(Location.parse(store), Location.parse(tmp_path / "copy.zarr"), workers=1)
    assert not [p for p in (tmp_path / "copy.zarr").rglob("*") if p.is_file() and p.read_bytes() == b"secret"]


# --- item 2: a destination whose folders are links --------------------------------------------------------


def test_cp_never_writes_through_a_link_in_the_destination(runner, store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dst = tmp_path / "copy.zarr"
    dst.mkdir()
    (dst / "features").symlink_to(elsewhere)
    result = runner.invoke(app, ["cp", str(store), str(dst)])
    assert result.exit_code == 2 and "symbolic link" in result.output, result.output
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in dst.iterdir()) == ["features"]
    (dst / "features").unlink()
    (dst / "progress").symlink_to(elsewhere)  # the lock file too
    assert runner.invoke(app, ["cp", str(store), str(dst)]).exit_code == 2
    assert list(elsewhere.iterdir()) == []


# --- item 3: a refused command changes nothing; --overwrite deletes only mrnet's own ----------------------


def test_a_folder_of_the_users_own_features_and_stats_is_never_taken_for_a_store(tmp_path):
    out = tmp_path / "out"
    (out / "features").mkdir(parents=True)
    (out / "stats").mkdir()
    (out / "features" / "my_features.csv").write_text("a,b\n1,2\n")
    (out / "stats" / "results.csv").write_text("acc\n0.9\n")
    before = snapshot(out)
    for overwrite in (False, True):
        with pytest.raises(UserError, match="is not an mrnet store") as err:
            StoreWriter.open(Location.parse(out), PROV, overwrite=overwrite)
        assert "--overwrite" not in str(err.value)
        assert snapshot(out) == before
    (out / "stats" / "results.csv").unlink()
    (out / "stats").rmdir()  # features/ alone: still not provably mrnet's
    with pytest.raises(UserError, match="is not an mrnet store"):
        StoreWriter.open(Location.parse(out), PROV, overwrite=True)
    assert (out / "features" / "my_features.csv").exists()


def test_overwrite_refuses_a_store_that_also_holds_the_users_files(tmp_path):
    loc = Location.parse(make_store(tmp_path / "s.zarr", per_genre=1))
    mine = Path(loc.url) / "features" / "my_notes.txt"
    mine.write_text("mine")
    before = snapshot(Path(loc.url))
    with pytest.raises(UserError, match="features/my_notes.txt") as err:
        StoreWriter.open(loc, PROV, overwrite=True)
    assert "deletes only what mrnet wrote" in str(err.value) and snapshot(Path(loc.url)) == before
    mine.unlink()
    StoreWriter.open(loc, PROV, overwrite=True).close()  # a store of mrnet's own files alone is overwritten
    assert sorted(p.name for p in Path(loc.url, "features").iterdir()) == ["zarr.json"]


def test_refused_repair_cp_and_resume_leave_the_folder_as_they_found_it(runner, store, tmp_path):
    users = tmp_path / "users"
    (users / "features").mkdir(parents=True)
    (users / "features" / "data.csv").write_text("1")
    before = snapshot(users)
    with pytest.raises(UserError):
        repair_store(Location.parse(users))
    assert snapshot(users) == before
    assert runner.invoke(app, ["cp", str(store), str(users)]).exit_code == 2
    assert snapshot(users) == before
    # a resume refused for other settings keeps the store's files, its lock file included
    loc = Location.parse(store)
    before = snapshot(Path(store))
    assert (Path(store) / LOCK).exists()
    with pytest.raises(UserError, match="other settings"):
        StoreWriter.open(loc, Provenance(**{**PROV.to_json(), "extraction": {"chunk_frames": 100, "codec": "zstd"}}))
    assert snapshot(Path(store)) == before
    # a new store refused right after it was created leaves no trace
    fresh = tmp_path / "fresh.zarr"
    writer = StoreWriter.open(Location.parse(fresh), PROV)
    from mrnet.store.ownership import discard_new

    discard_new(writer.location, writer.lock)
    assert not fresh.exists() or snapshot(fresh) == {}


# --- item 6: a store being written says so, naming its writer, from the first file on ----------------------


HOLD = """
import sys, time
from mrnet.store import Location
from mrnet.store.lock import WriterLock
lock = WriterLock.acquire(Location.parse(sys.argv[1]), "mrnet-extract")
print("held", flush=True)
time.sleep(60)
"""


def test_a_store_being_written_names_its_writer_from_the_first_file_on(tmp_path):
    out = tmp_path / "new.zarr"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
            "progress",
            LOCK,
        ]  # the lock is the first file
        assert json.loads((out / LOCK).read_text())["pid"] == holder.pid  # created whole, holder inside
        (out / "features").mkdir()  # the first writer has begun its store: no root zarr.json yet
        (out / "features" / "zarr.json").write_text("{}")
        for overwrite in (False, True):
            with pytest.raises(
                UserError,
                match=rf"is being written by mrnet-extract \(pid {holder.pid} on {socket.gethostname()}\) since",
            ) as err:
                StoreWriter.open(Location.parse(out), PROV, overwrite=overwrite)
            assert "--overwrite" not in str(err.value)
        assert (out / "features" / "zarr.json").exists()
        listed = CliRunner().invoke(app, ["ls", str(tmp_path), "--json"]).output
        assert json.loads(listed)[0]["damaged"].startswith(f"being written by mrnet-extract (pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


def test_an_abandoned_lock_file_is_not_taken_by_two_writers(tmp_path):
    """A writer that removes the lock file it created (a refused run) while another waits on it: the
    waiting one must not hold a lock on a file no longer in place, beside a third holding the new file."""
    loc = Location.parse(tmp_path / "s.zarr")
    first = WriterLock.acquire(loc, "first")
    first.abandon()
    assert not (tmp_path / "s.zarr" / LOCK).exists()
    second = WriterLock.acquire(loc, "second")
    with pytest.raises(UserError, match="being written by second"):
        WriterLock.acquire(loc, "third")
    second.release()
    time.sleep(0)


def test_ls_lists_damaged_stores_as_such(runner, tmp_path):
    make_store(tmp_path / "good.zarr", per_genre=1)
    make_store(tmp_path / "noroot.zarr", per_genre=1)
    (tmp_path / "noroot.zarr" / "zarr.json").unlink()
    make_store(tmp_path / "badroot.zarr", per_genre=1)
    (tmp_path / "badroot.zarr" / "zarr.json").write_bytes(b"\xff{not json")
    (tmp_path / "mine").mkdir()  # the user's own folder: not a store, not listed
    (tmp_path / "mine" / "features").mkdir()
    stores = {s["name"]: s for s in json.loads(runner.invoke(app, ["ls", str(tmp_path), "--json"]).output)}
    assert sorted(stores) == ["badroot.zarr", "good.zarr", "noroot.zarr"]
    assert stores["noroot.zarr"]["damaged"].startswith("damaged: no root zarr.json")
    assert (
        stores["badroot.zarr"]["damaged"].startswith("damaged: its root zarr.json")
        and "damaged" not in stores["good.zarr"]
    )
    table = runner.invoke(app, ["ls", str(tmp_path)], env={"COLUMNS": "250"}).output
    assert "damaged: no root zarr.json" in " ".join(table.split())


@pytest.mark.parametrize("rel", ["manifest/statistics.json", "manifest/statistics.npz"])
def test_verify_names_every_byte_flip_in_the_statistics(store, rel):
    from mrnet.store.verify import verify_store
    from tests.store.util import flip_byte

    loc = Location.parse(store)
    original = loc.read_bytes(rel)
    offsets = sorted({round(i * (len(original) - 1) / 29) for i in range(30)})
    missed = []
    for offset in offsets:
        flip_byte(loc, rel, offset)
        problems = [p.what for p in verify_store(loc, workers=1).problems]
        if not any("manifest/statistics" in what for what in problems):
            missed.append(offset)
        loc.write_bytes(rel, original)
    assert missed == [], f"flips at {missed} of {len(original)} bytes not named"


def test_reads_follow_no_link_inside_a_store(store, tmp_path):
    from mrnet.store import FeatureStore

    other = next(p for p in Path(store, "features").iterdir() if p.is_dir() and p.name != "calm.000")
    shard = Path(store, "features", "calm.000", "c", "0", "0", "0", "0")
    shard.unlink()
    shard.symlink_to(other / "c" / "0" / "0" / "0" / "0")  # another track's data, same store
    with pytest.raises(UserError, match=r"features/calm.000/c/0/0/0/0 is a symbolic link"):
        FeatureStore.open(store).read("calm.000", 0, 10)
    assert FeatureStore.open(store).read(other.name, 0, 10).shape[2] == 10  # the other tracks still read
    tracks = Path(store, "manifest", "tracks.parquet")
    moved = tmp_path / "tracks.parquet"
    tracks.rename(moved)
    tracks.symlink_to(moved)
    with pytest.raises(UserError, match=r"manifest/tracks.parquet is a symbolic link"):
        FeatureStore.open(store)


def test_a_lock_is_created_whole_without_hard_links_too(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")  # what some network filesystems answer

    monkeypatch.setattr(os, "link", no_links)
    lock = WriterLock.acquire(Location.parse(tmp_path / "s.zarr"), "mrnet-extract")
    try:
        assert json.loads((tmp_path / "s.zarr" / LOCK).read_text())["pid"] == os.getpid()
        assert sorted(p.name for p in (tmp_path / "s.zarr" / "progress").iterdir()) == [
            "lock.json"
        ]  # no temporary left
        with pytest.raises(UserError, match="is being written by mrnet-extract"):
            WriterLock.acquire(Location.parse(tmp_path / "s.zarr"), "another")
    finally:
        lock.release()
