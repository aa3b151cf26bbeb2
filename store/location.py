"""Where a store lives: a local path or any fsspec URL (``s3://``, ``gs://``, ``file://``).

Zarr arrays go through a Zarr store object; the Parquet manifests and the progress journal beside
them go through the matching fsspec filesystem. Local paths use Zarr's ``LocalStore`` and plain file
operations, with atomic renames so a killed writer never leaves a half-written small file.

Credentials and endpoints for URLs come from the backend's own configuration (for S3: the standard
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_ENDPOINT_URL`` / ``AWS_PROFILE`` variables
and ``~/.aws``), or from fsspec storage options: passed explicitly, or as JSON in the
``MRNET_STORAGE_OPTIONS`` environment variable (see docs/sharing.md).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import zarr
import zarr.abc.store
import zarr.storage

from mrnet.core.errors import UserError
from mrnet.core.files import write_atomic

if TYPE_CHECKING:
    from mrnet.store.objects import Objects

STORAGE_OPTIONS_ENV = "MRNET_STORAGE_OPTIONS"
#: Most requests a client of a remote store keeps in flight (reading threads, verify and copy workers),
#: and the size of the S3 client's connection pool (botocore's default, 10, would queue the rest).
MAX_IN_FLIGHT = 64


def storage_options_from_json(text: str | None, *, where: str = "--storage-options") -> dict[str, Any]:
    """Parse fsspec storage options given as a JSON object (``None`` or empty: no options).

    >>> storage_options_from_json('{"endpoint_url": "http://127.0.0.1:9000", "anon": false}')
    {'endpoint_url': 'http://127.0.0.1:9000', 'anon': False}
    """
    if not text or not text.strip():
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f'{where}: not valid JSON ({err}). Give an object, e.g. \'{{"endpoint_url": "http://host:9000"}}\'.'
        ) from err
    if not isinstance(options, dict):
        raise UserError(f"{where}: give a JSON object of fsspec storage options, not {type(options).__name__}.")
    return options


def check_key(rel: str, *, where: str = "") -> str:
    """``rel`` if it names a place inside a store's root, else a ``UserError`` naming it.

    Every join of a store root and a key read from a listing, a manifest or a bucket goes through
    here, so an object named ``features/../../x`` (a damaged or hostile store) can never make a copy,
    read or write land outside the root.

    >>> check_key("features/000002/zarr.json")
    'features/000002/zarr.json'
    >>> check_key("features/../../escaped.txt", where="s3://b/x.zarr")
    Traceback (most recent call last):
    ...
    mrnet.core.errors.UserError: s3://b/x.zarr: the key 'features/../../escaped.txt' would leave the store's root; refused. The store is damaged or was not written by mrnet: run mrnet-store verify on it.
    """
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts) or "\x00" in rel:
        raise UserError(
            f"{where + ': ' if where else ''}the key {rel!r} would leave the store's root; refused. "
            "The store is damaged or was not written by mrnet: run mrnet-store verify on it."
        )
    return rel


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` locations other than ``file://``."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


@dataclass(frozen=True)
class Location:
    """A store root: ``Location.parse("store/x.zarr")`` or ``Location.parse("s3://b/x.zarr")``.

    A URL given no ``storage_options`` takes them from ``$MRNET_STORAGE_OPTIONS`` (JSON), if set.
    """

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, location: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> Location:
        text = str(location)
        if text.startswith("file://"):
            text = text[len("file://") :]
        if not is_url(text):
            text = str(Path(text).expanduser().absolute())
        elif storage_options is None:
            storage_options = storage_options_from_json(os.environ.get(STORAGE_OPTIONS_ENV), where=STORAGE_OPTIONS_ENV)
        return cls(text.rstrip("/"), dict(storage_options or {}))

    @property
    def local(self) -> bool:
        return not is_url(self.url)

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    # --- Zarr side ---------------------------------------------------------------------------
    def zarr_store(self, *, read_only: bool = False) -> zarr.abc.store.Store:
        if self.local:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        key = (self.url, repr(sorted(self.storage_options.items())), read_only)
        if key not in _ZARR_CACHE:
            if read_only and (objects := self.objects) is not None:  # reads through obstore (store/objects.py)
                _ZARR_CACHE[key] = objects.zarr_store(_filesystem(self)[1])
                return _ZARR_CACHE[key]
            # our own client per location, not fsspec's instance cache: that one is keyed by thread and
            # arguments, not by the endpoint in the environment, and handed a later thread a client made
            # for another endpoint (a test's fault proxy, since stopped)
            options = {**_with_pool(self.url, self.storage_options), "skip_instance_cache": True}
            if read_only and self.url.startswith(("s3://", "s3a://")):
                options = {**_ONE_REQUEST, **options}  # a shard read whole is one GET, not a HEAD and a GET
            _ZARR_CACHE[key] = zarr.storage.FsspecStore.from_url(self.url, storage_options=options, read_only=read_only)
        return _ZARR_CACHE[key]

    # --- plain files beside the arrays ---------------------------------------------------------
    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return _filesystem(self)[0]

    def path(self, rel: str) -> str:
        """The full path of ``rel`` under the root; ``rel`` must stay inside it (``check_key``)."""
        check_key(rel, where=self.url)
        return f"{self.url}/{rel}" if self.local else f"{_filesystem(self)[1]}/{rel}"

    def exists(self, rel: str = "") -> bool:
        target = self.path(rel) if rel else (self.url if self.local else _filesystem(self)[1])
        if not self.local:
            self.fs.invalidate_cache(target)  # other processes write here too: ask the service, not a cached listing
        return self.fs.exists(target)

    @property
    def objects(self) -> Objects | None:
        """The obstore client that reads this location, or None where s3fs does (``store.objects``)."""
        if self.local:
            return None
        try:
            from mrnet.store.objects import objects_for
        except ImportError:  # no obstore (the GPU machines' kit leaves it out: they reach no bucket): s3fs reads
            return None
        return objects_for(self.url, self.storage_options)

    def read_bytes(self, rel: str) -> bytes:
        """A whole file; on object storage one GET, through obstore where it reads this location (``fs.open``,
        and s3fs's ``cat_file`` that may split a large object into concurrent parts, ask for the object's size
        first: a second request per file)."""
        target = self.path(rel)
        if not self.local:
            if (objects := self.objects) is not None:
                return objects.get(target)
            self.fs.invalidate_cache(target)
            return self.fs.cat_file(target, **_ONE_REQUEST if hasattr(self.fs, "max_concurrency") else {})
        with self.fs.open(target, "rb") as f:
            return f.read()

    def read_ranges(self, path: str, starts: list[int], ends: list[int]) -> list:
        """Byte ranges ``[starts[i], ends[i])`` of the object at ``path`` (a path under this root, as ``path``
        gives), fetched concurrently. A range past the object's end comes back short."""
        if (objects := self.objects) is not None:
            return objects.ranges(path, starts, ends)
        # fsspec's default puts a failed range's exception in the list, where it was taken for the range's bytes
        return self.fs.cat_ranges([path] * len(starts), starts, ends, on_error="raise")

    def read_tail(self, path: str, size: int) -> bytes:
        """The last ``size`` bytes of the file at ``path``: one read, one GET with a suffix range remotely."""
        if self.local:
            with open(path, "rb") as f:
                f.seek(-size, os.SEEK_END)
                return f.read(size)
        if (objects := self.objects) is not None:
            return objects.tail(path, size)
        return self.fs.cat_file(path, start=-size)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole small file; atomic on local disks (temp file + rename), per object on S3/GCS."""
        target = self.path(rel)
        if self.local:
            write_atomic(target, data, durable=True)
        else:
            with self.fs.open(target, "wb") as f:
                f.write(data)

    def listdir(self, rel: str) -> list[str]:
        """Names (not paths) of the entries under ``rel``; empty if it does not exist."""
        target = self.path(rel) if rel else _filesystem(self)[1]
        self.fs.invalidate_cache(target)  # other processes (and Zarr's own client) write here too
        try:
            entries = self.fs.ls(target, detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def files(self, rel: str = "") -> dict[str, int]:
        """Every file under ``rel`` (recursively) as ``{path relative to the root: size in bytes}``."""
        root = _filesystem(self)[1]
        target = self.path(rel) if rel else root
        if self.local:
            return _walk(root, target)
        self.fs.invalidate_cache(target)
        try:
            found = self.fs.find(target, detail=True)
        except FileNotFoundError:
            return {}
        return {p[len(root) + 1 :]: int(info["size"]) for p, info in found.items() if info.get("type") != "directory"}

    def remove(self, rel: str) -> None:
        target = self.path(rel)
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)

    def round_trip(self, tries: int = 3) -> float:
        """Seconds one small request to the store takes (the median of ``tries`` reads of the root
        ``zarr.json``); 0 for a local path. Sizes how many reads a client keeps in flight."""
        if self.local:
            return 0.0
        times = []
        for _ in range(tries):
            began = time.perf_counter()
            try:
                self.read_bytes("zarr.json")  # through the client that reads the store's data
            except FileNotFoundError:
                pass
            times.append(time.perf_counter() - began)
        return sorted(times)[len(times) // 2]

    def concurrency(self, local: int) -> int:
        """Requests to keep in flight: ``local`` for a path; for a URL, one per millisecond of its round trip
        (what a local reader, at about a millisecond per track or crop, would finish while one request
        waits), at least ``local`` and at most :data:`MAX_IN_FLIGHT` (docs/sharing.md)."""
        if self.local:
            return local
        return max(local, min(MAX_IN_FLIGHT, math.ceil(self.round_trip() / 1e-3)))

    def du(self) -> int:
        """Bytes under the root (every file)."""
        if self.local:
            return sum(self.files().values())
        root = _filesystem(self)[1]
        return int(self.fs.du(root, total=True)) if self.fs.exists(root) else 0


def _walk(root: str, target: str) -> dict[str, int]:
    """``Location.files`` of a local folder with ``os.scandir``: a store has five folders per track, and
    fsspec's walk spent ~0.2 ms of Python on each (10 s of `mrnet-store info` on 10,000 tracks)."""
    found: dict[str, int] = {}
    prefix = len(root) + 1
    stack = [target]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    try:
                        found[entry.path[prefix:]] = entry.stat().st_size
                    except FileNotFoundError:  # removed while we listed
                        pass
    return found


#: s3fs reads an object of unknown size in concurrent parts when it is large, asking its size first (a HEAD
#: before every whole-object GET); reads of metadata and whole shards ask for it in one request instead.
_ONE_REQUEST = {"max_concurrency": 1}

_FS_CACHE: dict[tuple[str, str], tuple[fsspec.AbstractFileSystem, str]] = {}
# A forked child (a DataLoader worker) must not reuse the parent's filesystem objects: s3fs's event
# loop and connections do not survive a fork ("This class is not fork-safe").
_ZARR_CACHE: dict[tuple[str, str, bool], zarr.abc.store.Store] = {}
os.register_at_fork(after_in_child=_FS_CACHE.clear)
os.register_at_fork(after_in_child=_ZARR_CACHE.clear)


def _filesystem(loc: Location) -> tuple[fsspec.AbstractFileSystem, str]:
    key = (loc.url, repr(sorted(loc.storage_options.items())))
    if key not in _FS_CACHE:
        if loc.local:
            _FS_CACHE[key] = (fsspec.filesystem("file"), loc.url)
        else:
            # our own cache, per location and options: fsspec's instance cache would hand a location a client
            # made earlier under other credentials (a changed environment, another test)
            _FS_CACHE[key] = fsspec.core.url_to_fs(
                loc.url, skip_instance_cache=True, **_with_pool(loc.url, loc.storage_options)
            )
    return _FS_CACHE[key]


def _with_pool(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """S3 options with a connection pool of :data:`MAX_IN_FLIGHT` unless the options set one.

    >>> _with_pool("s3://b/x", {})["config_kwargs"]
    {'max_pool_connections': 64}
    >>> _with_pool("s3://b/x", {"config_kwargs": {"max_pool_connections": 8}})["config_kwargs"]
    {'max_pool_connections': 8}
    """
    if not url.startswith(("s3://", "s3a://")):
        return options
    config = dict(options.get("config_kwargs") or {})
    config.setdefault("max_pool_connections", MAX_IN_FLIGHT)
    return {**options, "config_kwargs": config}


def parquet_bytes(frame) -> bytes:
    """Serialize a Polars frame to Parquet bytes (zstd), for ``Location.write_bytes``."""
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd")
    return buf.getvalue()
