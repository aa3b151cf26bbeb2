"""Whether a folder is a store mrnet wrote, before anything in it is written or deleted.

A folder is taken for a store only on proof that mrnet wrote it: a root ``zarr.json`` or its copy
``progress/root.zarr.json`` carrying mrnet's provenance attributes, or mrnet's own writer lock (the
first file of every new store). A folder without that proof (say, the user's own ``features/`` and
``stats/`` sub-folders) is refused, with or without ``--overwrite``, and nothing in it is touched.
``--overwrite`` then deletes a store's own entries only when every file under them is one the format
explains and none is a link; otherwise it refuses, naming them. A folder being written by a live
process is named with its writer first, whatever else it holds.

>>> import tempfile, pathlib
>>> from mrnet.store.location import Location
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> (folder / "features").mkdir(); _ = (folder / "features" / "mine.csv").write_text("1,2")
>>> check_folder(Location.parse(folder), overwrite=True)
Traceback (most recent call last):
...
mrnet.core.errors.UserError: ... is not empty and is not an mrnet store (it holds features/mine.csv, ...); nothing there is touched. ...
"""

from __future__ import annotations

import json

from mrnet.core.errors import UserError
from mrnet.core.files import is_temporary
from mrnet.store.format import ROOT_ATTR
from mrnet.store.layout import links, unexplained
from mrnet.store.location import Location
from mrnet.store.lock import LOCK, WriterLock

#: Everything mrnet writes at a store's root; a folder holding anything else is not (only) a store.
STORE_ENTRIES = ("zarr.json", "features", "manifest", "progress", "integrity.json")
#: A copy of the root zarr.json, so a store whose root was lost can be repaired (mrnet-store repair).
ROOT_BACKUP = "progress/root.zarr.json"


def check_folder(location: Location, *, overwrite: bool) -> None:
    """Refuse (``UserError``, nothing touched) a folder mrnet may not write or overwrite; see the module text."""
    busy = WriterLock.holder_if_busy(location)
    if busy is not None:
        raise WriterLock(location, {})._busy(busy)
    entries = [name for name in location.listdir("") if not is_temporary(name)]
    if not entries or entries == ["progress"] and set(location.listdir("progress")) <= {LOCK.split("/")[1]}:
        return  # empty, or a lock alone: a run stopped before it began
    foreign = [name for name in entries if name not in STORE_ENTRIES]
    if foreign:
        what = (
            "is not empty and is not an mrnet store"
            if "zarr.json" not in entries
            else "holds files mrnet did not write"
        )
        raise UserError(
            f"{location.url} {what} (it holds {', '.join(sorted(foreign)[:5])}); nothing there is touched. "
            "Write the store to a new or empty folder (--out)."
        )
    if not written_by_mrnet(location):
        shown = ", ".join(sorted(location.files())[:3]) or ", ".join(f"{e}/" for e in sorted(entries))
        raise UserError(
            f"{location.url} is not empty and is not an mrnet store (it holds {shown}, ...); nothing there is touched. "
            "It has no zarr.json, no progress/root.zarr.json and no writer lock of mrnet's, so none of it can be "
            "shown to be mrnet's. Write the store to a new or empty folder (--out)."
        )
    if overwrite:
        strangers = unexplained(rel for rel in location.files() if rel != LOCK) + links(location)
        if strangers:
            raise UserError(
                f"{location.url} is an mrnet store that also holds files mrnet did not write ({', '.join(strangers[:5])}"
                f"{' ...' if len(strangers) > 5 else ''}); --overwrite deletes only what mrnet wrote, so nothing was "
                "touched. Move those files out, or write the store to another --out."
            )
    elif "zarr.json" not in entries:
        backup = location.exists(ROOT_BACKUP)
        raise UserError(
            f"{location.url} holds store data but no root zarr.json: an interrupted copy, or damaged. Nothing was touched. "
            "If it is a copy, run the same mrnet-store cp again to finish it; "
            + (
                f"otherwise restore its root with: mrnet-store repair {location.url}"
                if backup
                else "it has no backup of its root to repair from: extract again with --overwrite, or into another --out"
            )
        )


def written_by_mrnet(location: Location) -> bool:
    """Whether the folder carries proof that mrnet wrote it (see the module text)."""
    for rel in ("zarr.json", ROOT_BACKUP):
        try:
            attrs = json.loads(location.read_bytes(rel)).get("attributes") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(attrs.get(ROOT_ATTR), dict):
            return True
    try:
        holder = json.loads(location.read_bytes(LOCK))
    except (OSError, ValueError):
        return False
    return isinstance(holder, dict) and str(holder.get("command", "")).startswith("mrnet")


def clear_store(location: Location) -> None:
    """Delete a store's own entries for ``--overwrite`` (``check_folder`` has shown them all to be mrnet's),
    keeping the writer lock this process holds."""
    for entry in STORE_ENTRIES:
        if entry != "progress":
            location.remove(entry)
    for name in location.listdir("progress"):
        if f"progress/{name}" != LOCK:
            location.remove(f"progress/{name}")


def discard_new(location: Location, lock: WriterLock) -> None:
    """Undo the creation of a store this process has just created and written nothing else into (a run
    refused right after, e.g. an unwritable --manifests-dir): a refused run leaves no store behind."""
    for rel in ("zarr.json", "features/zarr.json", ROOT_BACKUP):
        location.remove(rel)
    if location.local and not location.listdir("features"):
        location.remove("features")
    lock.abandon()
