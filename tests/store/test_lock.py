"""One writer per store: a second is refused by name; a killed writer's lock never blocks for ever."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mrnet.core.errors import UserError
from mrnet.store import Location
from mrnet.store import lock as lock_module
from mrnet.store.lock import LOCK, WriterLock

HOLD = """
import sys, time
from mrnet.store import Location
from mrnet.store.lock import WriterLock
lock = WriterLock.acquire(Location.parse(sys.argv[1]), "mrnet-extract")
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_holder_leaves_no_lock(tmp_path):
    store = str(tmp_path / "s.zarr")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, store], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            UserError, match=rf"is being written by mrnet-extract \(pid {holder.pid} on .*\) since .*; wait for it"
        ):
            WriterLock.acquire(Location.parse(store), "mrnet-extract")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    WriterLock.acquire(Location.parse(store), "mrnet-extract").release()  # the kernel dropped the dead holder's lock


def test_on_s3_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(s3, monkeypatch):
    _, bucket = s3
    loc = Location.parse(f"s3://{bucket}/s.zarr")
    first = WriterLock.acquire(loc, "mrnet-extract")
    with pytest.raises(UserError, match=r"is being written by mrnet-extract.*taken over once it is 180 s old"):
        WriterLock.acquire(loc, "mrnet-extract")
    first._stop.set()  # the first writer is killed: its heartbeat stops
    stale = json.loads(loc.read_bytes(LOCK)) | {"heartbeat": time.time() - lock_module.STALE - 1}
    loc.write_bytes(LOCK, json.dumps(stale).encode())
    second = WriterLock.acquire(loc, "mrnet-store cp")
    assert json.loads(loc.read_bytes(LOCK))["command"] == "mrnet-store cp"
    first.release()  # a late release of the taken-over lock must not delete the new holder's
    assert loc.exists(LOCK)
    second.release()
    assert not loc.exists(LOCK)


def test_two_extractions_into_one_store_the_second_is_refused(tmp_path):
    from mrnet.store import Provenance, StoreWriter

    prov = Provenance(feature="mel", layers=[0], dim=48, frame_rate=62.5, channels=1)
    with StoreWriter.open(Location.parse(tmp_path / "s.zarr"), prov):
        with pytest.raises(UserError, match="is being written by"):
            StoreWriter.open(Location.parse(tmp_path / "s.zarr"), prov)


def test_the_heartbeat_outlives_storage_errors_of_any_kind(s3, monkeypatch):
    """botocore's EndpointConnectionError is not an OSError: it used to end the heartbeat thread, after
    which the lock went stale and a second writer could take it over from a live one."""
    _, bucket = s3
    monkeypatch.setattr(lock_module, "HEARTBEAT", 0.05)
    loc = Location.parse(f"s3://{bucket}/beat.zarr")
    lock = WriterLock.acquire(loc, "mrnet-extract")
    write, failures = type(loc).write_bytes, []

    class EndpointDown(Exception):  # what botocore raises when the service cannot be reached
        pass

    def flaky(self, key, data):
        if key == LOCK and len(failures) < 3:
            failures.append(key)
            raise EndpointDown("Could not connect to the endpoint URL")
        return write(self, key, data)

    monkeypatch.setattr(type(loc), "write_bytes", flaky)  # Location is frozen: patch its class
    try:
        deadline = time.time() + 10
        while len(failures) < 3 and time.time() < deadline:
            time.sleep(0.05)
        beat = lock._current()["heartbeat"]  # _current retries a read that meets a rewrite
        time.sleep(0.5)
        assert len(failures) == 3 and lock._beat.is_alive()
        assert lock._current()["heartbeat"] > beat  # beating again once the service answers
    finally:
        lock.release()


def test_a_writer_starting_while_a_check_holds_the_lock_for_an_instant_is_not_refused(tmp_path):
    """``holder_if_busy`` takes a shared lock for an instant; a writer's exclusive lock asked for in that
    instant used to be refused at once, naming the lock file's old holder as the writer."""
    loc = Location.parse(tmp_path / "s.zarr")
    WriterLock.acquire(loc, "an earlier run").release()  # a finished run's lock file stays in place
    checking = os.open(loc.path(LOCK), os.O_RDONLY)
    fcntl.flock(checking, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what holder_if_busy holds while it looks
    threading.Timer(0.05, os.close, [checking]).start()  # and lets go of
    writer = WriterLock.acquire(loc, "mrnet-extract")
    try:
        assert WriterLock.holder_if_busy(loc)["command"] == "mrnet-extract"
        with pytest.raises(UserError, match=r"being written by mrnet-extract \(pid"):  # a writer is still refused
            WriterLock.acquire(loc, "mrnet-store cp")
    finally:
        writer.release()


CHECK = """
import sys, time
from mrnet.store import Location
from mrnet.store.lock import WriterLock
loc, checks, began = Location.parse(sys.argv[1]), 0, time.time()
print("checking", flush=True)
while time.time() - began < float(sys.argv[2]):
    WriterLock.holder_if_busy(loc)
    checks += 1
print(checks, flush=True)
"""


def test_writers_are_never_refused_by_a_process_checking_the_store_at_the_same_time(tmp_path):
    """A real process asking ``holder_if_busy`` over and over (as a second mrnet-extract or mrnet-store ls
    does once) while this one takes and lets go of the writer lock: every take succeeds."""
    store = str(tmp_path / "s.zarr")
    WriterLock.acquire(Location.parse(store), "first").release()
    checker = subprocess.Popen([sys.executable, "-c", CHECK, store, "4"], stdout=subprocess.PIPE, text=True)
    try:
        assert checker.stdout.readline().strip() == "checking"
        refused, taken, began = [], 0, time.time()
        while time.time() - began < 3:
            try:
                WriterLock.acquire(Location.parse(store), "mrnet-extract").release()
                taken += 1
            except UserError as err:
                refused.append(str(err))
        checks = int(checker.stdout.readline())
    finally:
        checker.kill()
        checker.wait()
    assert taken > 50 and checks > 1000, (taken, checks)  # the two overlapped many times
    assert refused == []
