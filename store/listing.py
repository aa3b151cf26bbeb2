"""The stores in a folder or under a bucket prefix, read from their root ``zarr.json`` and summary.

A folder entry counts as a store when its ``zarr.json`` carries ``mrnet`` attributes; its provenance is
read as raw JSON, so stores of another format version are listed too (with that version).

>>> import tempfile
>>> from mrnet.store.synthetic import synthetic_store
>>> from mrnet.store.location import Location
>>> root = tempfile.mkdtemp()
>>> _ = synthetic_store(root + "/a.zarr", per_genre=1)
>>> [(s["name"], s["feature"], s["tracks"]) for s in list_stores(Location.parse(root))]
[('a.zarr', 'mel', 3)]
"""

from __future__ import annotations

import json
from typing import Any

from mrnet.store.format import ROOT_ATTR
from mrnet.store.location import Location


def list_stores(root: Location, *, size: bool = True) -> list[dict[str, Any]]:
    """One entry per store directly under ``root`` (or ``root`` itself, if it is a store), by name."""
    found = [entry for entry in [describe(root, size=size)] if entry]
    if found:
        return found
    names = [name for name in root.listdir("") if name not in ("", ".", "..") and "/" not in name]  # never a parent
    children = (Location.parse(f"{root.url}/{name}", root.storage_options) for name in names)
    return [entry for entry in (describe(child, size=size) for child in children) if entry]


def describe(loc: Location, *, size: bool = True) -> dict[str, Any] | None:
    """Name, feature, model, layers, tracks and size of the store at ``loc``; ``None`` if it is none."""
    try:
        attrs = json.loads(loc.read_bytes("zarr.json")).get("attributes", {})
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, json.JSONDecodeError):
        return None
    prov = attrs.get(ROOT_ATTR)
    if not isinstance(prov, dict):
        return None
    try:
        summary = json.loads(loc.read_bytes("manifest/summary.json"))
    except FileNotFoundError:
        summary = {}
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
        "size_bytes": loc.du() if size else None,
    }
