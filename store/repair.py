"""Putting a damaged store's own metadata back, from the copies mrnet keeps, and clearing a killed writer's leftovers.

A store whose root ``zarr.json`` is gone (deleted, or an interrupted copy that never reached it) no
longer opens, and ``mrnet-extract`` refuses to write into it rather than start over. ``repair_store``
restores the root from ``progress/root.zarr.json`` (written beside the journal when the store was
created), recreates the empty ``features`` group metadata if it is missing, and removes temporary
files a killed writer left. It changes nothing else: run ``mrnet-store verify`` afterwards.

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> loc = Location.parse(synthetic_store(tempfile.mkdtemp() + "/r.zarr", per_genre=1))
>>> loc.remove("zarr.json")
>>> repair_store(loc)
['restored zarr.json from progress/root.zarr.json']
>>> repair_store(loc)
[]
"""

from __future__ import annotations

from mrnet.core.errors import UserError
from mrnet.store.format import read_provenance
from mrnet.store.location import Location
from mrnet.store.lock import WriterLock
from mrnet.store.writer import ROOT_BACKUP, group_metadata, remove_temporary_files


def repair_store(location: Location) -> list[str]:
    """Restore what can be restored; return what was done (empty when nothing needed it)."""
    if not location.exists("zarr.json") and not location.exists(
        ROOT_BACKUP
    ):  # checked before the lock: a refusal writes nothing
        raise _unrepairable(location)
    lock = WriterLock.acquire(location, "mrnet-store repair")
    try:
        done = _repair(location)
    except BaseException:
        lock.abandon()  # a refused repair leaves no lock file behind
        raise
    lock.release()
    return done


def _unrepairable(location: Location) -> UserError:
    return UserError(
        f"{location.url} has no zarr.json and no copy of it ({ROOT_BACKUP}): it cannot be repaired. "
        "If it is an interrupted copy, run the same mrnet-store cp again; otherwise extract it again."
    )


def _repair(location: Location) -> list[str]:
    """The repairs, made while holding the store's writer lock."""
    done = []
    if not location.exists("zarr.json"):
        if not location.exists(ROOT_BACKUP):
            raise _unrepairable(location)
        read_provenance(location, ROOT_BACKUP)  # a damaged copy is refused by name
        location.write_bytes("zarr.json", location.read_bytes(ROOT_BACKUP))
        done.append(f"restored zarr.json from {ROOT_BACKUP}")
    read_provenance(location)
    if not location.exists("features/zarr.json"):
        location.write_bytes("features/zarr.json", group_metadata({}))
        done.append("recreated features/zarr.json")
    removed = remove_temporary_files(location)
    if removed:
        done.append(f"removed {len(removed)} temporary file(s) of an interrupted write, e.g. {removed[0]}")
    return done
