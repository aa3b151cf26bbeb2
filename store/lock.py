"""One writer per store at a time: a lock that a second writer meets, and that a killed writer does not leave behind.

``WriterLock.acquire(location)`` is taken by ``mrnet-extract`` (and ``mrnet-store cp`` on its
destination) for the whole run; a second process gets a ``UserError`` naming the holder.

- **Local paths:** an exclusive ``flock`` on ``progress/lock.json``. The kernel drops it when the holder
  exits, killed or not, so a stale lock cannot exist; the file itself only says who holds it. A new lock
  file is created whole, holder inside (written under a temporary name, then linked into place), and
  before anything else of a new store: from the first file on, a store being written names its writer.
  ``holder_if_busy`` asks, without taking it, whether a live writer holds a store's lock (it takes a
  shared lock for an instant; a writer starting in that instant waits for it instead of being refused).
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
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrnet.core.errors import UserError
from mrnet.core.files import temporary_name
from mrnet.store.layout import check_destination_path
from mrnet.store.location import Location

LOCK = "progress/lock.json"
HEARTBEAT = 30.0  # seconds between rewrites of a remote lock
STALE = 180.0  # a remote lock not rewritten for this long belongs to a killed run
SHARED_RETRIES = 40  # tries of a local lock held only by checks (holder_if_busy) before it counts as busy


@dataclass
class WriterLock:
    """A held lock; ``release()`` when the run ends (also on errors)."""

    location: Location
    holder: dict[str, Any]
    _fd: int | None = None
    _created: list[str] = field(default_factory=list)  # what acquiring created (lock file, progress/), for abandon()
    _previous: bytes | None = None  # an existing lock file's content before we wrote ours
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    @classmethod
    def acquire(cls, location: Location, command: str) -> WriterLock:
        holder = {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": _now(),
            "heartbeat": time.time(),
        }
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
            if current is not None and current.get("token") == self.holder.get(
                "token"
            ):  # else gone, or taken over after we stalled
                try:
                    self.location.fs.rm(self.location.path(LOCK))
                except OSError:
                    pass  # removed meanwhile: nothing of ours left

    def abandon(self) -> None:
        """Release, and remove what acquiring created: a refused command leaves the folder as it found it."""
        if self._fd is not None and self._previous is not None:
            os.pwrite(self._fd, self._previous, 0)
            os.ftruncate(self._fd, len(self._previous))
        if self._fd is not None:
            for rel in reversed(self._created):  # unlinked while still held: a waiting process re-checks the inode
                path = self.location.path(rel)
                try:
                    os.rmdir(path) if rel == "progress" else os.unlink(path)
                except OSError:
                    pass  # not empty (someone else's files), or gone: leave it
        self.release()

    @staticmethod
    def holder_if_busy(location: Location) -> dict | None:
        """The holder of a live writer lock on ``location`` (without taking it), else None."""
        if not location.local:
            try:
                current = json.loads(location.read_bytes(LOCK))
            except (OSError, ValueError):
                return None
            fresh = isinstance(current, dict) and time.time() - float(current.get("heartbeat", 0) or 0) < STALE
            return current if fresh else None
        path = location.path(LOCK)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path) or {"command": "another process"}
        finally:
            os.close(fd)  # closing drops a shared lock we got
        return None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- local: flock ------------------------------------------------------------------------------
    def _acquire_local(self) -> None:
        check_destination_path(self.location, LOCK)  # never a lock through a linked progress/
        path = self.location.path(LOCK)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
            self._created.append("progress")
        for _ in range(10):
            fd, created = self._open_or_create(path)
            if fd is None:
                continue
            if not _lock_exclusive(fd):
                os.close(fd)
                raise self._busy(_read_holder(path))
            try:
                same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the file we locked was removed by a holder abandoning it: start again
                os.close(fd)
                continue
            if not created:
                self._previous = os.pread(fd, 1 << 16, 0)  # put back by abandon()
                body = json.dumps(self.holder).encode()
                os.pwrite(fd, body, 0)
                os.ftruncate(fd, len(body))
            else:
                self._created.append(LOCK)
            self._fd = fd
            return
        raise self._busy(_read_holder(path))

    def _open_or_create(self, path: str) -> tuple[int | None, bool]:
        """The lock file opened (never through a link), created whole with our holder if there was none."""
        try:
            return os.open(path, os.O_RDWR | os.O_NOFOLLOW), False
        except FileNotFoundError:
            pass
        body = json.dumps(self.holder).encode()
        tmp = str(temporary_name(Path(path)))
        with open(tmp, "wb") as f:
            f.write(body)
        try:
            os.link(tmp, path)  # atomic: the lock appears with its holder in it, or not at all
        except FileExistsError:
            return None, False  # another process created it first: open theirs
        except OSError:  # a filesystem without hard links: create it exclusively, then write the holder
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                return None, False
            os.pwrite(fd, body, 0)
            return fd, True
        finally:
            os.unlink(tmp)
        try:
            return os.open(path, os.O_RDWR | os.O_NOFOLLOW), True
        except FileNotFoundError:
            return None, False

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
            except FileNotFoundError as err:  # a put needs no key to exist: the bucket itself is not there
                raise UserError(
                    f"{self.location.url}: the bucket {bucket!r} does not exist ({err}). Check the bucket's name in "
                    "the URL and the endpoint, or create the bucket first (aws s3 mb s3://NAME)."
                ) from err
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
        who = (
            f"{holder.get('command', 'mrnet')} (pid {holder.get('pid')} on {holder.get('host')}) since {holder.get('since')}"
            if holder
            else "another process"
        )
        stale = "" if self.location.local else f" A lock from a killed run is taken over once it is {STALE:.0f} s old."
        return UserError(
            f"{self.location.url} is being written by {who}; wait for it to finish, or stop it. "
            f"Two writers would do the same work twice.{stale}"
        )


def _lock_exclusive(fd: int) -> bool:
    """Take the exclusive ``flock`` on ``fd``; False when a writer holds it.

    ``holder_if_busy`` checks a store by taking a shared lock for an instant, and an exclusive lock
    cannot be taken meanwhile: a writer starting at that instant must not be refused for it. So when
    the exclusive lock is refused, a shared one is tried: granted, only checks hold the file (a writer's
    lock is exclusive), so it is let go and the exclusive lock asked for again, a few milliseconds later.
    Refused, a writer holds it. The tries are bounded (about a second), should checks never pause.
    """
    for attempt in range(SHARED_RETRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # an exclusive holder: a writer
        fcntl.flock(fd, fcntl.LOCK_UN)
        time.sleep(random.uniform(0.001, 0.002 * (attempt + 1)))  # apart from another writer probing with us
    return False


def _read_holder(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
