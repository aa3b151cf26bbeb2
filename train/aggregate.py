"""Folds trained separately, reported as one ``--folds all`` run (``mrnet-report DIR``).

Folds of one cross-validation can be trained anywhere, at any time, as ordinary one-fold runs, as
long as each lands in ``DIR/fold-<k>/``::

    mrnet-train --store store/gtzan.zarr --fold 0 --out runs/gtzan-cv/fold-0    # machine A
    mrnet-train --store store/gtzan.zarr --fold 1 --out runs/gtzan-cv/fold-1    # machine B, ...
    mrnet-report runs/gtzan-cv

``aggregate_folds`` checks that they belong together (the same store: provenance and genres; the
same config but for the fold, the run folder and the machine options; every fold of the store once,
each finished), then writes ``DIR/config.json``, ``DIR/store.json`` and the aggregate report exactly
as a ``--folds all`` run writes them, so ``mrnet-compare``, ``mrnet-predict`` (the fold ensemble)
and ``mrnet-train --resume DIR`` treat the folder as one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mrnet.core.errors import UserError
from mrnet.train import report as reports
from mrnet.train.runs import RunFolder, write_json

#: Config fields that may differ between folds trained separately: which fold, where, on what machine.
PER_FOLD = ("fold", "out", "all_folds", "store", "device", "num_workers", "workers", "gpus", "scheduler")
FOLD_DIR = re.compile(r"fold-(\d+)$")


def is_fold_collection(path: Path) -> bool:
    """``path`` holds ``fold-<k>/`` runs and no report of its own yet: separately trained folds (no
    config.json), or a ``--folds all`` run whose folds were finished elsewhere."""
    path = Path(path)
    folds = any((p / "config.json").is_file() for p in path.glob("fold-*"))
    if not folds or (path / "report.json").exists():
        return False
    if not (path / "config.json").exists():
        return True
    return bool(json.loads((path / "config.json").read_text()).get("all_folds"))


def aggregate_folds(path: Path) -> dict:
    """Write the ``--folds all`` report of the fold runs in ``path`` (see the module doc); returns it."""
    path = Path(path)
    runs = {}
    for sub in sorted(path.glob("fold-*")):
        match = FOLD_DIR.search(sub.name)
        if not match or not (sub / "config.json").is_file():
            continue
        fold = RunFolder(sub).config().fold
        if fold != int(match.group(1)):
            raise UserError(f"{sub} holds a run of fold {fold}: put the run of --fold K in {path}/fold-K")
        runs[fold] = RunFolder(sub)
    if not runs:
        raise UserError(
            f"{path} holds no fold-<k>/ run folders. Train them with mrnet-train --fold K --out {path}/fold-K"
        )
    first = runs[min(runs)]
    info = first.store_info()
    total = _fold_total(info, first.path)
    for run in runs.values():
        other = run.store_info()
        if (json.dumps(other["provenance"], sort_keys=True), other["genres"]) != (
            json.dumps(info["provenance"], sort_keys=True),
            info["genres"],
        ):
            raise UserError(
                f"{run.path} was trained on another store than {first.path} ({other['url']} against {info['url']}): "
                "a cross-validation aggregates folds of one store"
            )
        theirs, mine = run.config().to_json(), first.config().to_json()
        differ = sorted(key for key in mine if key not in PER_FOLD and mine[key] != theirs.get(key))
        if differ:
            raise UserError(
                f"{run.path} and {first.path} differ in {', '.join(differ)}: folds of one cross-validation share every "
                "setting but the fold. Train the odd fold again with the others' settings."
            )
    missing = [k for k in range(total) if k not in runs]
    if missing:
        raise UserError(
            f"{path} has {len(runs)} of the store's {total} folds; missing: {', '.join(f'fold-{k}' for k in missing)}. "
            f"Train each with: mrnet-train --store {info['url']} --fold K --out {path}/fold-K (same settings)"
        )
    unfinished = [run.path.name for run in runs.values() if not run.finished]
    if unfinished:
        raise UserError(
            f"{', '.join(unfinished)} of {path} have not finished: continue each with mrnet-train --resume {path}/FOLD"
        )
    top = RunFolder(path)
    if not top.config_file.exists():
        write_json(
            top.config_file,
            {
                **first.config().to_json(),
                "fold": None,
                "all_folds": True,
                "out": str(path),
                "workers": None,
                "gpus": [],
                "scheduler": None,
            },
        )
    if not top.store_file.exists():
        write_json(top.store_file, {**info, "split": "every fold", "sizes": {}})
    return reports.write_aggregate(top, [runs[k].report() for k in range(total)])


def _fold_total(info: dict, where: Path) -> int:
    """How many folds the store has, from a fold run's split description ("fold 2 of 10: ...")."""
    match = re.match(r"fold \d+ of (\d+)", info.get("split", ""))
    if not match:
        raise UserError(
            f"{where} is not a run of one fold (its split is {info.get('split')!r}); aggregate runs of --fold K only"
        )
    return int(match.group(1))
