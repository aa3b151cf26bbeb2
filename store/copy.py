"""Copying a store between a local path and a URL (any direction), resumable.

An object already at the destination with the source's size is skipped, so an interrupted copy run
again picks up where it stopped. The root ``zarr.json`` (what makes a folder a store) is removed from the
destination first and copied last, after the manifest: a partial copy never opens as a store.
Local files are written to a temporary name and renamed; object stores publish an object only once it
is complete. Sizes cannot tell a changed object of the same size, so run ``mrnet-store verify`` on the
copy (``mrnet-store cp --verify``).

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> tmp = tempfile.mkdtemp()
>>> src = Location.parse(synthetic_store(tmp + "/a.zarr", per_genre=1))
>>> first = copy_store(src, Location.parse(tmp + "/b.zarr"))
>>> again = copy_store(src, Location.parse(tmp + "/b.zarr"))
>>> (first.copied, first.skipped), (again.copied, again.skipped)   # the manifest, statistics, integrity record and root are always recopied
((16, 0), (7, 9))
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from mrnet.core.errors import UserError
from mrnet.core.files import atomic_path, is_temporary
from mrnet.store.integrity import INTEGRITY
from mrnet.store.layout import check_destination_path, prefix_clashes, refuse_links, unexplained
from mrnet.store.location import Location, check_key
from mrnet.store.lock import LOCK, WriterLock

BLOCK = 8 * 2**20


@dataclass
class CopyResult:
    """Objects and bytes copied and skipped (already there, same size)."""

    src: str
    dst: str
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def destination_for(src: Location, dst: str) -> str:
    """``dst`` itself, or ``dst/<store name>`` when ``dst`` ends with ``/`` (copy *into* a folder or prefix).

    >>> destination_for(Location.parse("s3://b/x.zarr"), "/data/stores/")
    '/data/stores/x.zarr'
    """
    return f"{dst}{src.name}" if dst.endswith("/") else dst


def copy_store(
    src: Location,
    dst: Location,
    *,
    workers: int = 4,
    on_start: Callable[[int, int], None] | None = None,
    on_object: Callable[[str, int], None] | None = None,
) -> CopyResult:
    """Copy the finished store at ``src`` to ``dst``.

    ``on_start(objects, bytes)`` is called once the source is listed, ``on_object(rel, size)`` per object
    copied or skipped (from worker threads).
    """
    _check(src, dst)
    refuse_links(src, role="source")  # a store is files mrnet wrote: a link is followed by nothing
    objects = {rel: size for rel, size in src.files().items() if not is_temporary(rel) and rel != LOCK}
    for rel in objects:  # every key is checked before anything is copied
        check_key(rel, where=src.url)
    _check_source_keys(src, objects)
    refuse_links(dst, role="destination")
    _destination_files(dst)  # refused before the lock: a refused copy writes nothing
    lock = WriterLock.acquire(dst, "mrnet-store cp")
    try:
        _destination_files(dst)  # again, now that no one else writes there
    except BaseException:
        lock.abandon()
        raise
    try:
        return _copy(src, dst, objects, workers=workers, on_start=on_start, on_object=on_object)
    finally:
        lock.release()


def _check_source_keys(src: Location, objects: dict[str, int]) -> None:
    """Refuse a source holding what mrnet never writes: a key that is also a prefix, or files the format does not explain."""
    clashes = prefix_clashes(objects)
    if clashes:
        key, longer = clashes[0]
        raise UserError(
            f"{src.url}: the object {key!r} is also the folder of {longer!r}; mrnet never writes such keys (no "
            "disk could hold both), so this store was not written by mrnet or was changed since. Nothing was copied. "
            "Delete the stray object, or copy the store again from where it came from."
        )
    strangers = unexplained(objects)
    if strangers:
        raise UserError(
            f"{src.url} holds {len(strangers)} file(s) the store format does not explain ({', '.join(strangers[:5])}"
            f"{' ...' if len(strangers) > 5 else ''}); mrnet copies only what it wrote. Nothing was copied. "
            f"Remove them (mrnet-store verify {src.url} lists them), or copy the store again from where it came from."
        )


def _copy(src: Location, dst: Location, objects: dict[str, int], *, workers: int, on_start, on_object) -> CopyResult:
    """Copy ``objects`` (path -> size) while holding the destination's writer lock."""
    if on_start:
        on_start(len(objects), sum(objects.values()))
    have = _destination_files(dst)
    if "zarr.json" in have:
        dst.remove("zarr.json")  # from here until the end the destination is visibly incomplete

    def one(rel: str) -> bool:
        copy = _last(rel) or have.get(rel) != objects[rel]
        if copy:
            copy_object(src, dst, rel)
        if on_object:
            on_object(rel, objects[rel])
        return copy

    body = sorted(rel for rel in objects if not _last(rel))
    tail = sorted(rel for rel in objects if rel.startswith("manifest/")) + [
        r for r in (INTEGRITY, "zarr.json") if r in objects
    ]
    pool = ThreadPoolExecutor(max(1, workers))
    try:
        flags = list(pool.map(one, body))
    finally:  # on Ctrl-C, objects not started yet are not started; those in flight finish whole
        pool.shutdown(wait=True, cancel_futures=True)
    flags += [one(rel) for rel in tail]  # in order, after the body
    copied = [rel for rel, flag in zip(body + tail, flags) if flag]
    moved = sum(objects[rel] for rel in copied)
    return CopyResult(src.url, dst.url, len(copied), len(objects) - len(copied), moved, sum(objects.values()) - moved)


def _last(rel: str) -> bool:
    """The manifest, its integrity record and the root group: always copied, and only after everything else."""
    return rel in ("zarr.json", INTEGRITY) or rel.startswith("manifest/")


def copy_object(src: Location, dst: Location, rel: str) -> None:
    """Copy one file; a local destination is written under a temporary name, then renamed."""
    source, target = src.path(rel), dst.path(rel)
    if dst.local:
        check_destination_path(dst, rel)  # never written through a link out of the destination
        with atomic_path(target) as partial:
            if src.local:
                with _open_local(source) as r, open(partial, "wb") as w:
                    shutil.copyfileobj(r, w, BLOCK)
            elif (objects := src.objects) is not None:
                objects.download(source, str(partial))
            else:
                src.fs.get_file(source, str(partial))
    elif src.local:
        with _open_local(source) as r, dst.fs.open(target, "wb", block_size=BLOCK) as w:
            shutil.copyfileobj(r, w, BLOCK)
    else:
        with src.fs.open(source, "rb", block_size=BLOCK) as r, dst.fs.open(target, "wb", block_size=BLOCK) as w:
            shutil.copyfileobj(r, w, BLOCK)


def _open_local(path: str):
    """A source file opened for reading, never through a link (``O_NOFOLLOW``: a link is an error here)."""
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UserError(
                f"{path} is a symbolic link; mrnet follows no link inside a store. Nothing more was copied."
            ) from None
        raise


def _check(src: Location, dst: Location) -> None:
    if src.url == dst.url:
        raise UserError(f"{src.url}: source and destination are the same store.")
    if not src.exists("zarr.json"):
        raise UserError(f"{src.url} is not a feature store (no zarr.json). Check the path or URL.")
    if not src.exists("manifest/tracks.parquet"):
        raise UserError(
            f"{src.url} is not finished (no manifest/tracks.parquet). Finish it with mrnet-extract, then copy."
        )
    if dst.exists("zarr.json") and dst.read_bytes("zarr.json") != src.read_bytes("zarr.json"):
        raise UserError(
            f"{dst.url} is another store (its zarr.json differs). Remove it, or copy to another destination."
        )


def _destination_files(dst: Location) -> dict[str, int]:
    """What is already at ``dst``: nothing, or (part of) a store; anything else is refused."""
    have = dst.files()
    foreign = unexplained(have)  # a user's features/data.csv is no part of a store
    if foreign:
        raise UserError(
            f"{dst.url} holds files that are not part of a store (e.g. {foreign[0]}). "
            "To copy into a folder or prefix, end the destination with '/'."
        )
    return have
