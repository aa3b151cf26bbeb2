"""mrnet-store repair: the root metadata back from mrnet's own copy, leftovers of a killed writer removed."""

from __future__ import annotations

from mrnet.core.files import TEMP_MARK
from mrnet.store import FeatureStore
from mrnet.store.cli import app
from tests.helpers import make_store


def test_repair_restores_the_root_and_the_store_verifies(runner, tmp_path):
    store = make_store(tmp_path / "s.zarr", per_genre=1)
    (store / "zarr.json").unlink()
    (store / f"manifest{TEMP_MARK}00000000").write_bytes(b"x")
    result = runner.invoke(app, ["repair", str(store)])
    assert (
        result.exit_code == 0 and "restored zarr.json" in result.output and "removed 1 temporary file" in result.output
    )
    assert FeatureStore.open(store).tracks.height == 3
    assert runner.invoke(app, ["verify", str(store)]).exit_code == 0


def test_repair_without_a_copy_says_what_to_do(runner, tmp_path):
    store = make_store(tmp_path / "s.zarr", per_genre=1)
    (store / "zarr.json").unlink()
    (store / "progress" / "root.zarr.json").unlink()
    result = runner.invoke(app, ["repair", str(store)])
    assert result.exit_code == 2 and "cannot be repaired" in result.output and "mrnet-store cp again" in result.output
