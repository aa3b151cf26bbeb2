"""Which files a store may hold: the format's own names, and nothing the tool did not write.

A store is files mrnet wrote (docs/store.md lists them). Anything else found in one, and every
symbolic link, is something a copy must not carry and ``verify`` names: a link inside a received store
(``features/x/c/0/0/0/README -> /proc/self/environ``) would otherwise make ``cp`` copy whatever it
points at, secrets included. mrnet never writes a link, so any link at all inside a store is refused;
the store's root itself may be a link the user made.

>>> unexplained(["zarr.json", "features/a/c/0/0/0/0", "features/a/c/0/0/0/README", "notes.txt"])
['features/a/c/0/0/0/README', 'notes.txt']
>>> prefix_clashes(["manifest/tracks.parquet", "manifest/tracks.parquet/evil"])
[('manifest/tracks.parquet', 'manifest/tracks.parquet/evil')]
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable, Sequence

from mrnet.core.errors import UserError
from mrnet.core.files import is_temporary
from mrnet.store.location import Location

_NAMES = (
    r"zarr\.json",
    r"integrity\.json",
    r"features/zarr\.json",
    r"features/[A-Za-z0-9_-][A-Za-z0-9._-]*/zarr\.json",
    r"features/[A-Za-z0-9_-][A-Za-z0-9._-]*/c(/[0-9]+)+",  # shard objects (c/0/0/0/0)
    r"manifest/(tracks|genres)\.parquet",
    r"manifest/(summary|statistics)\.json",
    r"manifest/statistics\.npz",
    r"progress/(lock|root\.zarr)\.json",
    r"progress/[A-Za-z0-9_-][A-Za-z0-9._-]*\.(parquet|stats\.npz)",  # a work unit's journal and sums
)
_FORMAT = re.compile("|".join(f"(?:{n})" for n in _NAMES))


def explained(rel: str) -> bool:
    """Whether ``rel`` (a path under a store's root) is a name mrnet writes, or one of its temporary files."""
    return is_temporary(rel) or _FORMAT.fullmatch(rel) is not None


def unexplained(rels: Iterable[str]) -> list[str]:
    """The paths among ``rels`` that the store format does not explain, sorted."""
    return sorted(rel for rel in rels if not explained(rel))


def prefix_clashes(rels: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs ``(key, longer)`` where an object key is also the folder of another (``a/b`` and ``a/b/c``):
    possible in a bucket, impossible on a disk, never written by mrnet. ``longer`` is the first such key."""
    return clashes_in(sorted(rels))


def clashes_in(keys: Sequence[str]) -> list[tuple[str, str]]:
    """:func:`prefix_clashes` of keys already sorted. The smallest key at or after ``key + "/"`` is the first
    under that folder if any is, so each key costs one binary search: O(n log n) for any keys (a store of
    FMA-large's size has ~225,000; scanning the sorted tail behind each key copied it, quadratic)."""
    found = []
    for key in keys:
        folder = key + "/"
        at = bisect.bisect_left(keys, folder)
        if at < len(keys) and keys[at].startswith(folder):
            found.append((key, keys[at]))
    return found


def links(location: Location, rel: str = "") -> list[str]:
    """Every symbolic link under ``rel`` of a local store (relative paths, sorted); never followed.
    Object stores have no links: always empty there."""
    if not location.local:
        return []
    top = os.path.join(location.url, rel) if rel else location.url
    if os.path.islink(top) and rel:
        return [rel]
    found = []
    for folder, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found.append(os.path.relpath(path, location.url).replace(os.sep, "/"))
    return sorted(found)


def refuse_links(location: Location, *, role: str) -> None:
    """A ``UserError`` naming the links under a local store, if it holds any (``role``: "source", ...)."""
    found = links(location)
    if found:
        shown = ", ".join(f"{rel} -> {os.readlink(os.path.join(location.url, rel))}" for rel in found[:3])
        raise UserError(
            f"{location.url} ({role}) holds {len(found)} symbolic link(s): {shown}{' ...' if len(found) > 3 else ''}. "
            "mrnet never writes links into a store, and follows none (a link could carry any file of this machine "
            "into the copy); nothing was copied. Remove the links, or copy the store again from where it came from; "
            "mrnet-store verify lists every file a store should not hold."
        )


def refuse_links_on_read(location: Location, rel: str) -> None:
    """A ``UserError`` if ``rel`` (a file or folder of a local store) is, holds or lies under a link:
    readers follow no link inside a store (checked once per track and per store opened)."""
    if not location.local:
        return
    path, found = location.url, []
    for part in rel.split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path):
            found.append(os.path.relpath(path, location.url))
            break
    else:
        found = links(location, rel) if os.path.isdir(path) else []
    if found:
        first = os.path.join(location.url, found[0])
        raise UserError(
            f"{location.url}: {found[0]} is a symbolic link (to {os.readlink(first)}); mrnet reads no link inside a "
            f"store. Nothing was read from it. Run mrnet-store verify {location.url}, which lists every file a "
            "store should not hold; copy the store again from where it came from."
        )


def check_destination_path(location: Location, rel: str) -> None:
    """Refuse to write ``rel`` under a local store when any folder between the root and it is a link
    (a ``features/`` linked elsewhere would take the writes out of the store). No-op on object stores."""
    if not location.local:
        return
    path = location.url
    for part in rel.split("/")[:-1]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise UserError(
                f"{location.url}: {os.path.relpath(path, location.url)} is a symbolic link (to {os.readlink(path)}); "
                "mrnet writes only into the store's own folders, never through a link out of it. Nothing was written "
                "there. Remove the link, or copy to another destination."
            )
