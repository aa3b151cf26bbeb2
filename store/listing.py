"""The stores in a folder or under a bucket prefix, read from their root ``zarr.json`` and summary.

A folder entry counts as a store when its ``zarr.json`` carries ``mrnet`` attributes; its provenance is
read as raw JSON, so stores of another format version are listed too (with that version).

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> from mrnet.store.location import Location
>>> root = tempfile.mkdtemp()
>>> _ = synthetic_store(root + "/a.zarr", per_genre=1)
>>> [(s["name"], s["feature"], s["task"], s["tracks"], s["parts"]) for s in list_stores(Location.parse(root))]
[('a.zarr', 'mel', 'single-label', 3, {'train': 3})]
"""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl

from mrnet.store.format import ROOT_ATTR
from mrnet.store.location import Location


def list_stores(root: Location, *, size: bool = True) -> list[dict[str, Any]]:
    """One entry per store directly under ``root`` (or ``root`` itself, if it is a store), by name."""
    found = [entry for entry in [describe(root, size=size)] if entry]
    if found:
        return found
    names = [name for name in root.listdir("") if name not in ("", ".", "..") and "/" not in name]  # never a parent
    children = (Location.parse(f"{root.url}/{name}", root.storage_options) for name in names)
    return [entry for entry in (describe(child, size=size) or damaged(child) for child in children) if entry]


def damaged(loc: Location) -> dict[str, Any] | None:
    """An entry for a folder that is a store mrnet wrote but does not open (no root, a root that is not
    JSON, or one being written right now), with why; ``None`` if it is no store at all."""
    from mrnet.store.lock import WriterLock
    from mrnet.store.ownership import written_by_mrnet

    if not written_by_mrnet(loc) and not loc.exists("zarr.json"):
        return None
    holder = WriterLock.holder_if_busy(loc)
    if holder is not None:
        why = f"being written by {holder.get('command')} (pid {holder.get('pid')} on {holder.get('host')}) since {holder.get('since')}"
    elif not loc.exists("zarr.json"):
        why = f"damaged: no root zarr.json (an interrupted copy: run the same mrnet-store cp again; or mrnet-store repair {loc.url})"
    else:
        why = f"damaged: its root zarr.json is not the root of an mrnet store (mrnet-store verify {loc.url}; mrnet-store repair {loc.url})"
    empty = dict.fromkeys(
        ("dataset", "feature", "model", "channels", "dtype", "dim", "format_version", "tracks", "done")
    )
    return {
        "name": loc.name,
        "url": loc.url,
        **empty,
        "layers": 0,
        "layer_ids": [],
        "task": None,
        "parts": None,
        "finalized": False,
        "damaged": why,
        "size_bytes": loc.du(),
    }


def describe(loc: Location, *, size: bool = True) -> dict[str, Any] | None:
    """Name, feature, model, layers, tracks and size of the store at ``loc``; ``None`` if it is none."""
    try:
        attrs = json.loads(loc.read_bytes("zarr.json")).get("attributes", {})
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError):  # not JSON (UnicodeDecodeError too)
        return None
    except AttributeError:  # JSON, but not an object
        return None
    prov = attrs.get(ROOT_ATTR)
    if not isinstance(prov, dict):
        return None
    try:
        summary = json.loads(loc.read_bytes("manifest/summary.json"))
    except FileNotFoundError:
        summary = {}
    parts = _parts(loc) if summary else None
    return {
        "name": loc.name,
        "url": loc.url,
        "dataset": prov.get("dataset") or None,
        "feature": prov.get("feature"),
        "model": prov.get("model"),
        "layers": len(prov.get("layers") or []),
        "layer_ids": list(prov.get("layers") or []),
        "channels": prov.get("channels"),
        "dtype": prov.get("dtype"),
        "task": prov.get("task", "single-label"),
        "dim": prov.get("dim"),
        "format_version": prov.get("format_version"),
        "finalized": bool(summary),
        "tracks": summary.get("tracks"),
        "done": summary.get("done"),
        "parts": parts,
        "size_bytes": loc.du() if size else None,
    }


def _parts(loc: Location) -> dict[str, int] | None:
    """Extracted tracks per split or fold, from the manifest (None where it cannot be read: ``verify`` says why)."""
    from mrnet.store.info import part_sizes

    try:
        tracks = pl.read_parquet(
            io.BytesIO(loc.read_bytes("manifest/tracks.parquet")), columns=["split", "fold", "status"]
        )
    except (FileNotFoundError, OSError, pl.exceptions.PolarsError):
        return None
    return part_sizes(tracks)
