"""Extraction on Dask: local workers, a cluster started by the test, and a worker killed mid-run."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from mrnet.extract.pipeline import run
from mrnet.store import FeatureStore
from mrnet.store.format import checksum
from tests.extract.test_pipeline import config, make_audio_folder

pytestmark = pytest.mark.slow
COLUMNS = ["track_id", "status", "frames", "checksum"]


@pytest.fixture()
def cluster():
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0) as c:
        yield c


# --workers keeps Dask's dashboard on its usual port for users; the test's own cluster may hold it already
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_one_process_local_workers_and_a_cluster_write_identical_stores(tmp_path, tiny_wavlm, cluster):
    root = make_audio_folder(tmp_path / "music", per_genre=4)
    # One torch thread everywhere: float reductions then run in the same order, so stores are bitwise equal.
    common = dict(features="wavlm", model=tiny_wavlm, window_seconds=1.0, threads=1)
    serial = run(config(tmp_path, root, out=str(tmp_path / "one.zarr"), **common)).tracks
    local = run(config(tmp_path, root, out=str(tmp_path / "local.zarr"), workers=2, **common)).tracks
    remote = run(
        config(tmp_path, root, out=str(tmp_path / "cluster.zarr"), scheduler=cluster.scheduler_address, **common)
    ).tracks
    expected = serial.select(COLUMNS).sort("track_id")
    assert expected["status"].to_list().count("done") == 8
    assert local.select(COLUMNS).sort("track_id").equals(expected)
    assert remote.select(COLUMNS).sort("track_id").equals(expected)


def test_a_killed_worker_has_its_unit_rerun_and_the_store_ends_complete(tmp_path, tiny_wavlm, cluster):
    from dask.distributed import Client

    root = make_audio_folder(tmp_path / "music", genres=("a", "b", "c"), per_genre=10, seconds=2.0, bad=False)
    cfg = config(
        tmp_path,
        root,
        out=str(tmp_path / "k.zarr"),
        features="wavlm",
        model=tiny_wavlm,
        window_seconds=1.0,
        unit_size=1,
        scheduler=cluster.scheduler_address,
        folds=3,
        threads=1,
    )
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("summary", run(cfg)))
    worker.start()
    progress = tmp_path / "k.zarr" / "progress"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(progress.glob("*.parquet"))) < 4:
        time.sleep(0.05)
    with Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)
        victim = next(iter(pids.values()))
        os.kill(victim, signal.SIGKILL)  # the nanny restarts it; the scheduler reruns its units
    worker.join(timeout=300)
    assert "summary" in outcome, "the run should finish despite the killed worker"
    tracks = outcome["summary"].tracks
    assert tracks.height == 30 and tracks["track_id"].n_unique() == 30
    assert tracks["status"].unique().to_list() == ["done"]
    store = FeatureStore.open(cfg.store)
    for key, crc in tracks.select("key", "checksum").iter_rows():
        assert checksum(store.read(key)) == crc
    clean = run(
        config(
            tmp_path,
            root,
            out=str(tmp_path / "clean.zarr"),
            features="wavlm",
            model=tiny_wavlm,
            window_seconds=1.0,
            folds=3,
            unit_size=1,
            threads=1,
        )
    ).tracks
    assert tracks.select(COLUMNS).sort("track_id").equals(clean.select(COLUMNS).sort("track_id"))


def test_gpus_option_starts_one_worker_per_gpu_each_seeing_only_its_own(tmp_path, monkeypatch):
    """The --gpus plumbing without a GPU: worker processes get CUDA_VISIBLE_DEVICES=<id> each."""
    from dask.distributed import Client

    from mrnet.extract.config import ExtractConfig
    from mrnet.extract.executors import local_cluster

    with local_cluster(ExtractConfig(dataset="folder", gpus=(0, 1))) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        seen = client.run(lambda: __import__("os").environ.get("CUDA_VISIBLE_DEVICES"))
        resources = {w["name"]: w["resources"] for w in client.scheduler_info()["workers"].values()}
    assert sorted(seen.values()) == ["0", "1"]
    assert resources == {"gpu0": {"GPU": 1}, "gpu1": {"GPU": 1}}
