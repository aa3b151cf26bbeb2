"""Where a run's outputs go, checked before anything is written: ``--out``, ``--manifests-dir`` and
the manifests folder's owner, and what one ``--chunk-frames`` costs in memory.

A store's manifests go to ``<manifests-dir>/<store name>/`` (``config.manifest_folder``), so two
stores of one name in different folders (``a/x.zarr``, ``b/x.zarr``), or two ``folder`` datasets
extracted to one ``--out``, would share that folder, and the second run used to replace the first's
manifests without a word. The folder now records whose it is in ``owner.json`` (the store's URL,
the dataset and its root), and a run of another store or another root is refused by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mrnet.core.errors import UserError
from mrnet.extract.config import ExtractConfig, manifest_folder
from mrnet.store import Location, Provenance

OWNER = "owner.json"


def check_outputs(cfg: ExtractConfig, location: Location, root: Path) -> None:
    """UserError, before anything is written, for an ``--out`` or ``--manifests-dir`` that is a file,
    and for a manifests folder that belongs to another store or another dataset root."""
    if location.local and Path(location.url).is_file():
        raise UserError(
            f"--out {location.url} is a file: pass the folder for the store (a new or an existing store.zarr)"
        )
    folder = manifest_folder(cfg)
    for path, what in ((cfg.manifests_dir, "--manifests-dir"), (folder, f"--manifests-dir {cfg.manifests_dir}: its")):
        if path.exists() and not path.is_dir():
            raise UserError(f"{what} {path} is a file: pass a folder for the manifests")
    owner = read_owner(folder)
    if owner is None:
        return
    if owner.get("store") != location.url:
        raise UserError(
            f"{folder}/ holds the manifests of another store of this name, {owner.get('store')}; this run writes "
            f"{location.url}. Pass --manifests-dir with another folder for this store, or give it another name with --out"
        )
    if owner.get("root") != str(root) and not cfg.overwrite:
        raise UserError(
            f"{location.url} was extracted from {owner.get('dataset')} at {owner.get('root')}; this run reads {root}. "
            f"Pass --out with a store of its own (e.g. store/{root.name}.zarr), or --overwrite to replace that store"
        )


def read_owner(folder: Path) -> dict | None:
    """The manifests folder's owner record, or None where it has none (written before it was kept)."""
    path = folder / OWNER
    if not path.is_file():
        return None
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(
            f"cannot read {path} ({err}): it names the store these manifests belong to; "
            "delete the folder if the manifests in it are not needed"
        ) from err
    if not isinstance(owner, dict):
        raise UserError(
            f"{path} is not an owner record (a JSON object): delete the folder if the manifests in it are not needed"
        )
    return owner


def owner_bytes(location: Location, dataset: str, root: Path) -> bytes:
    """What ``owner.json`` holds: the store these manifests belong to, the dataset and its root."""
    return json.dumps({"store": location.url, "dataset": dataset, "root": str(root)}, indent=2).encode()


def check_chunk_memory(cfg: ExtractConfig, prov: Provenance) -> None:
    """UserError when one padded inner-chunk row of a track (every layer, ``--chunk-frames`` frames)
    would need more than a quarter of this machine's memory: each track is held whole, padded to
    whole chunks, while it is written, and several are written at once."""
    need = cfg.chunk_frames * max(1, len(prov.layers)) * prov.channels * prov.dim * np.dtype(prov.dtype).itemsize
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > total / 4:
        most = int(total / 4 // (need / cfg.chunk_frames))
        raise UserError(
            f"--chunk-frames {cfg.chunk_frames}: every track would need at least {need / 2**30:.1f} GiB of memory "
            f"({len(prov.layers)} layers x {cfg.chunk_frames} frames x {prov.dim} x {prov.dtype}), over a quarter "
            f"of this machine's {total / 2**30:.1f} GiB; choose at most {most} (the default is 150)"
        )
