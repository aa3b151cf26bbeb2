"""Two real ``mrnet-extract`` processes on one store: the second is refused, naming the first, and
changes nothing; the first then finishes a store that verifies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mrnet.store import FeatureStore
from tests.extract.test_pipeline import make_audio_folder


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _files(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``roots`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*") if p.is_file()}


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a worker pool's children too), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _stop(pid: int) -> None:
    """SIGSTOP ``pid`` and its children, and wait until each has stopped: a signal is delivered asynchronously,
    and a process still running for a moment could write a file after the test's snapshot."""
    deadline = time.time() + 30
    while time.time() < deadline:
        running = [p for p in _tree(pid) if _state(p) not in ("T", "t", "gone", "Z")]
        if not running:
            return
        for p in running:
            os.kill(p, signal.SIGSTOP)
        time.sleep(0.01)
    raise AssertionError(f"mrnet-extract (pid {pid}) did not stop")


def _resume(pid: int) -> None:
    for p in _tree(pid):
        if _state(p) in ("T", "t"):
            os.kill(p, signal.SIGCONT)


def test_a_second_extraction_is_refused_while_the_first_writes_and_the_first_then_finishes_intact(tmp_path):
    root = make_audio_folder(tmp_path / "music", genres=("a", "b", "c"), per_genre=16, seconds=1.5, bad=False)
    out, manifests = tmp_path / "s.zarr", tmp_path / "m"
    command = [_tool("mrnet-extract"), "folder", "--root", str(root), "--features", "mel", "--unit-size", "1"]
    command += ["--folds", "2", "--out", str(out), "--manifests-dir", str(manifests)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((out / "progress").glob("*.parquet")):
            assert first.poll() is None, first.stderr.read().decode()
            time.sleep(0.002)
        _stop(first.pid)  # the first writer, mid-run, holds its lock for as long as the test needs
        assert not (out / "manifest").exists(), "the first extraction should be stopped part-way"
        before = _files(out, manifests)
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        said = " ".join((second.stdout + second.stderr).split())
        assert second.returncode == 2, said
        assert f"is being written by mrnet-extract (pid {first.pid} on {socket.gethostname()}) since" in said
        assert "--overwrite" not in said
        assert first.poll() is None  # refused while the first still held the lock
        assert _files(out, manifests) == before  # the refused run changed nothing
        _resume(first.pid)
        assert first.wait(timeout=300) == 0, first.stderr.read().decode()
    finally:
        if first.poll() is None:
            _resume(first.pid)
            first.kill()
            first.wait()
    verified = subprocess.run([_tool("mrnet-store"), "verify", str(out)], capture_output=True, text=True, timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    tracks = FeatureStore.open(out).tracks
    assert tracks.height == 48 and tracks["status"].unique().to_list() == ["done"]
