"""mrnet-store cp between local paths: complete copies, resumed copies, refusals."""

from __future__ import annotations

import pytest

from mrnet.core.errors import UserError
from mrnet.core.files import is_temporary
from mrnet.store import FeatureStore, Location
from mrnet.store import copy as copy_mod
from mrnet.store.cli import app
from mrnet.store.copy import copy_store
from tests.helpers import make_store
from tests.store.util import stored


def test_copy_is_the_same_store(runner, store, tmp_path):
    result = runner.invoke(app, ["cp", str(store), str(tmp_path / "copy.zarr"), "--verify"])
    assert result.exit_code == 0, result.output
    # 6 track shards and their zarr.json, the groups, the manifest, the feature statistics (npz + json), the integrity record
    assert "copied 22 objects" in result.output and "OK: 6 tracks checked" in result.output
    assert stored(Location.parse(tmp_path / "copy.zarr")) == stored(Location.parse(store))
    a, b = FeatureStore.open(store), FeatureStore.open(tmp_path / "copy.zarr")
    assert a.tracks.equals(b.tracks) and a.provenance == b.provenance
    assert (a.read("mid.001", 10, 310) == b.read("mid.001", 10, 310)).all()


def test_an_interrupted_copy_is_not_a_store_and_resumes(store, tmp_path, monkeypatch):
    src, dst = Location.parse(store), Location.parse(tmp_path / "copy.zarr")
    real, calls = copy_mod.copy_object, []

    def dies_after_five(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(args[2])
        real(*args)

    monkeypatch.setattr(copy_mod, "copy_object", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        copy_store(src, dst, workers=1)
    assert len(stored(dst)) == 5 and "zarr.json" not in dst.files()
    with pytest.raises(UserError, match="not a feature store"):
        FeatureStore.open(dst)
    monkeypatch.setattr(copy_mod, "copy_object", real)
    result = copy_store(src, dst, workers=2)
    assert (result.skipped, result.copied) == (5, 17)
    assert stored(dst) == stored(src) and not any(is_temporary(rel) for rel in dst.files())


def test_a_truncated_object_is_copied_again(store, tmp_path):
    dst = Location.parse(tmp_path / "copy.zarr")
    copy_store(Location.parse(store), dst)
    dst.write_bytes("features/calm.000/c/0/0/0/0", b"short")
    dst.remove("zarr.json")
    result = copy_store(Location.parse(store), dst)
    assert (
        result.copied == 8
    )  # the truncated shard, five manifest files (tables, summary, statistics npz + json), the integrity record, the root
    assert FeatureStore.open(dst).read("calm.000").shape[2] > 0


def test_copy_into_a_folder_with_a_trailing_slash(runner, store, tmp_path):
    (tmp_path / "shared").mkdir()
    result = runner.invoke(app, ["cp", str(store), f"{tmp_path / 'shared'}/"])
    assert result.exit_code == 0, result.output
    assert FeatureStore.open(tmp_path / "shared" / "local.zarr").finalized


def test_copy_refuses_to_mix_stores(runner, store, tmp_path):
    other = make_store(tmp_path / "other.zarr", per_genre=1, feature="wavlm", layers=2, dim=8)
    result = runner.invoke(app, ["cp", str(store), str(other)])
    assert result.exit_code == 2 and "is another store" in result.output
    result = runner.invoke(app, ["cp", str(store), str(tmp_path)])  # a folder of stores, not a store
    assert result.exit_code == 2 and "end the destination with '/'" in result.output


def test_copy_refuses_an_unfinished_store(runner, store, tmp_path):
    Location.parse(store).remove("manifest/tracks.parquet")
    result = runner.invoke(app, ["cp", str(store), str(tmp_path / "c.zarr")])
    assert result.exit_code == 2 and "is not finished" in result.output


SLOW_CP = """
import sys, time
from mrnet.store import copy as copy_mod
real = copy_mod.copy_object
def slow(src, dst, rel):  # a copy long enough to be interrupted part-way
    time.sleep(0.05)
    real(src, dst, rel)
copy_mod.copy_object = slow
from mrnet.store.cli import main
sys.argv = ["mrnet-store", "cp", *sys.argv[1:]]
main()
"""


def test_ctrl_c_during_cp_says_that_rerunning_resumes(store, tmp_path):
    """Typer turns Ctrl-C into a silent exit 130; the user must read what to do."""
    import signal
    import subprocess
    import sys
    import time

    dst = tmp_path / "copy.zarr"
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_CP, str(store), str(dst), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 60
    while not (dst / "features").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    output, _ = child.communicate(timeout=60)
    assert (
        child.returncode == 130 and "interrupted: what finished is kept; run the same command again to resume" in output
    )
    assert not (dst / "zarr.json").exists()  # an unfinished copy never opens as a store
    result = copy_store(Location.parse(store), Location.parse(dst))
    assert result.skipped > 0 and stored(Location.parse(dst)) == stored(Location.parse(store))
