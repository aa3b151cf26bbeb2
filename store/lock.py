"""One writer per store at a time: a lock that a second writer meets, and that a killed writer does not leave behind.

``WriterLock.acquire(location)`` is taken by ``mrnet-extract`` (and ``mrnet-store cp`` on its
destination) for the whole run; a second process gets a ``UserError`` naming the holder.

- **Local paths:** an exclusive ``flock`` on ``progress/lock.json``. The kernel drops it when the holder
  exits, killed or not, so a stale lock cannot exist; the file itself only says who holds it.
- **Object stores (S3):** ``progress/lock.json`` is created with a conditional write (``If-None-Match: *``),
  which the service grants to one writer only. The holder rewrites it every ``HEARTBEAT`` seconds; a
  lock whose heartbeat is older than ``STALE`` seconds belongs to a killed run and is taken over
  (deleted, then created again conditionally, so of two writers taking it over at once one wins).
  Other fsspec backends have no conditional write here: the lock is then checked and created in two
  steps, which keeps out a second run started later but not one started in the same instant.

>>> import tempfile
>>> loc = Location.parse(tempfile.mkdtemp() + "/s.zarr")
>>> lock = WriterLock.acquire(loc, "test")
>>> WriterLock.acquire(loc, "another")
Traceback (most recent call last):
...
mrnet.core.errors.UserError: ... is being written by test (pid ...) since ...; wait for it to finish, or stop it. ...
>>> lock.release()
>>> WriterLock.acquire(loc, "another").release()
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mrnet.core.errors import UserError
from mrnet.store.location import Location

LOCK = "progress/lock.json"
HEARTBEAT = 30.0  # seconds between rewrites of a remote lock
STALE = 180.0  # a remote lock not rewritten for this long belongs to a killed run


@dataclass
class WriterLock:
    """A held lock; ``release()`` when the run ends (also on errors)."""

    location: Location
    holder: dict[str, Any]
    _fd: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    @classmethod
    def acquire(cls, location: Location, command: str) -> WriterLock:
        holder = {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "since": _now(), "heartbeat": time.time()}
        lock = cls(location, holder)
        if location.local:
            lock._acquire_local()
        else:
            lock._acquire_remote()
        return lock

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        elif not self.location.local:
            current = self._current()
            if current is not None and current.get("token") == self.holder.get("token"):  # else gone, or taken over after we stalled
                try:
                    self.location.fs.rm(self.location.path(LOCK))
                except OSError:
                    pass  # removed meanwhile: nothing of ours left

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- local: flock ------------------------------------------------------------------------------
    def _acquire_local(self) -> None:
        path = self.location.path(LOCK)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._busy(_read_holder(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder).encode(), 0)
        self._fd = fd

    # --- remote: conditional create + heartbeat -----------------------------------------------------
    def _acquire_remote(self) -> None:
        self.holder["token"] = f"{self.holder['host']}-{self.holder['pid']}-{time.time_ns()}"
        if not self._create():
            current = self._current()
            if current is not None and time.time() - float(current.get("heartbeat", 0)) < STALE:
                raise self._busy(current)
            self.location.remove(LOCK)  # a killed run's lock: take it over
            if not self._create():
                raise self._busy(self._current())
        self._beat = threading.Thread(target=self._heartbeat, name="mrnet-lock", daemon=True)
        self._beat.start()

    def _create(self) -> bool:
        """Write the lock if none exists; False if one does."""
        body = json.dumps(self.holder).encode()
        fs, path = self.location.fs, self.location.path(LOCK)
        if hasattr(fs, "call_s3"):
            bucket, key = path.split("/", 1)
            try:
                fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            except FileExistsError:  # someone's lock; or ours, when a retried request had gone through after all
                return (self._current() or {}).get("token") == self.holder["token"]
            return True
        if self.location.exists(LOCK):
            return False
        self.location.write_bytes(LOCK, body)
        return True

    def _current(self) -> dict | None:
        """The lock's holder; None when there is none or it is not JSON. A read that fails is tried again:
        one that meets the holder's heartbeat rewriting the object fails (the object changed under it),
        and reading that as "no holder" would take a live writer's lock."""
        for attempt in range(5):
            try:
                return json.loads(self.location.read_bytes(LOCK))
            except (FileNotFoundError, ValueError):  # no lock, or not one of ours to read
                return None
            except OSError:
                time.sleep(0.2 * (attempt + 1))
        return None

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            self.holder["heartbeat"] = time.time()
            try:
                self.location.write_bytes(LOCK, json.dumps(self.holder).encode())
            except Exception:  # noqa: BLE001 - botocore's connection errors are not OSErrors; a dead beat would let the lock go stale
                pass  # the next beat tries again; a lock not refreshed for STALE seconds may be taken over

    def _busy(self, holder: dict | None) -> UserError:
        who = (f"{holder.get('command', 'mrnet')} (pid {holder.get('pid')} on {holder.get('host')}) since {holder.get('since')}"
               if holder else "another process")
        stale = "" if self.location.local else f" A lock from a killed run is taken over once it is {STALE:.0f} s old."
        return UserError(f"{self.location.url} is being written by {who}; wait for it to finish, or stop it. "
                         f"Two writers would do the same work twice.{stale}")


def _read_holder(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
