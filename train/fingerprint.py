"""What a run is, for comparing runs: the fingerprint of its resolved configuration, its test set, and row labels.

``resolved(config, store)`` is everything that changes a run's result: every field of its
``config.json`` (the model and its options, the recipe, the normalisation, the layers, the
augmentation, the selection rule...) with the choices left to the store and model made explicit,
and the store's identity (its provenance without the package versions that wrote it, and its label
names) instead of its path. It leaves out what does not change the result (:data:`NOT_RESULT`):
the seed, the run folder, the fold (a test set, see ``scored_on``), the preset's name (its values
are in), and the machinery (processes, devices, readers, evaluation batch size, the test curve).
``fingerprint`` hashes it; every finished run writes it as ``fingerprint.json``, and a run from
before that is fingerprinted from its ``config.json`` and ``store.json`` the same way.

``scored_on(report)`` is what a run was scored on: runs are averaged together only when their
fingerprints and test sets are equal (seeds of one configuration on one split or fold; a ``--folds
all`` run's folds are averaged inside it). ``distinguishing(resolved)`` names, for each of several
configurations, what sets it apart from the others, as a row label.

>>> a = {"model": "mrnet", "preset": "small", "epochs": 60, "drop_routes": [], "store": "s.zarr"}
>>> b = {**a, "epochs": 1, "drop_routes": ["L1"]}
>>> distinguishing([a, b])
['mrnet small, 60 epochs', 'mrnet small --drop-route L1, 1 epoch']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, fields
from pathlib import Path

from mrnet.train.tasks import HEADLINE, task_of

FILE = "fingerprint.json"

#: config.json fields that never change a run's result (or are its test set, or a name for values that are in).
NOT_RESULT = frozenset(
    {
        "store",
        "out",
        "seed",
        "seeds",
        "fold",
        "all_folds",
        "preset",
        "workers",
        "gpus",
        "scheduler",
        "num_workers",
        "device",
        "eval_batch_size",
        "test_curve",
        "sync_bn",
    }
)
#: Result fields a config.json from before they existed leaves out, with the value such a run trained with.
BEFORE = {"class_weights": "balanced", "epoch_mode": "crops", "wave_augment": None}
#: What the linear probe's fit reads of its config (train/probe.py): the rest of a recipe never reaches it.
PROBE_READS = ("model", "layers", "normalize", "select_metric")


def store_identity(store: dict) -> dict:
    """A store's identity from a run's ``store.json``: its provenance (without the versions that wrote it) and labels."""
    provenance = {k: v for k, v in store.get("provenance", {}).items() if k != "versions"}
    return {"provenance": provenance, "labels": list(store.get("genres", []))}


def resolved(config: dict, store: dict) -> dict:
    """Everything of a run's ``config.json`` and ``store.json`` that changes its result, defaults made explicit:
    the model's own options (``model_options``, or an older config.json's top-level MRNet keys) as settings of
    their own, each with its config's default where the run left it."""
    from mrnet.train.config import LEGACY_MODEL_KEYS, model_options_of
    from mrnet.train.models import MODELS

    model = config.get("model", "mrnet")
    entry = MODELS.get(model)
    out = {
        k: v for k, v in config.items() if k not in NOT_RESULT and k not in LEGACY_MODEL_KEYS and k != "model_options"
    }
    out = {**BEFORE, **out}
    if entry is not None:
        out |= {
            f.name: _default(f) for f in fields(entry.config) if f.name in entry.options and f.name != "instance_norm"
        }
    out |= model_options_of(config)
    if (
        model == "linear"
    ):  # fitted by scikit-learn on whole-track statistics: no epochs, batches, optimiser or augmentation
        out = {k: v for k, v in out.items() if k in PROBE_READS}
    task = task_of(store)
    out["normalize"] = (
        out.get("normalize") or "instance"
    )  # a run from before the choice was recorded trained per instance
    out["select_metric"] = out.get("select_metric") or HEADLINE[task][0]
    out["eval_unit"] = out.get("eval_unit") or (entry.evaluation if entry is not None else "whole")
    out["store_identity"] = store_identity(store)
    return out


def _default(field):
    return field.default_factory() if field.default is MISSING else field.default


def fingerprint(config: dict, store: dict) -> str:
    """A short hash of ``resolved(config, store)``: equal for runs that differ only in seed, folder or machine."""
    text = json.dumps(resolved(config, store), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record(path: Path) -> dict:
    """``fingerprint.json`` of a run folder: written by ``write`` when the run finished, else computed from its
    config.json and store.json (a run from before fingerprints; a ``--folds all`` run from its first fold's store)."""
    path = Path(path)
    if (path / FILE).is_file():
        return json.loads((path / FILE).read_text())
    return compute(path)


def compute(path: Path) -> dict:
    config = json.loads((path / "config.json").read_text())
    store_file = path / "store.json" if (path / "store.json").is_file() else path / "fold-0" / "store.json"
    store = json.loads(store_file.read_text()) if store_file.is_file() else {}
    return {"fingerprint": fingerprint(config, store), "resolved": resolved(config, store)}


def write(path: Path) -> dict:
    """Compute a run folder's fingerprint and write it as ``fingerprint.json``; returns it."""
    from mrnet.train.runs import write_json

    data = compute(Path(path))
    write_json(Path(path) / FILE, data)
    return data


def scored_on(report: dict) -> str:
    """What a run's test numbers were scored on: its store (by identity), the split or fold and the split sizes."""
    config = report.get("config", {})
    folds = (
        f"{report['n']} folds"
        if "folds" in report
        else f"fold {config.get('fold')}"
        if config.get("fold") is not None
        else "split"
    )
    return json.dumps(
        [
            report.get("dataset"),
            report.get("feature"),
            report.get("store") if not report.get("dataset") else None,
            folds,
            report.get("split"),
            report.get("sizes"),
        ],
        sort_keys=True,
        default=str,
    )


# --- labels ---------------------------------------------------------------------------------------


def distinguishing(configs: list[dict]) -> list[str]:
    """For each resolved config (plus ``store``, ``preset`` and ``fold`` if known), a label: the model and
    preset (the linear probe: ``linear probe``), then each value that differs among the configs of the same
    model, written as the option that sets it. Rows of different models are told apart by their heads alone
    (their recipes differ in dozens of values, which would bury the label)."""

    def head(c: dict) -> str:
        model = c.get("model", "mrnet")
        return "linear probe" if model == "linear" else " ".join(str(x) for x in (model, c.get("preset")) if x)

    labels = []
    for c in configs:
        peers = [o for o in configs if o.get("model", "mrnet") == c.get("model", "mrnet")]
        keys = sorted({k for o in peers for k in o} - {"model", "preset", "store_identity"})
        # a value differs where the peers that have the field disagree (a field one model does not read is no difference)
        differ = [k for k in keys if len({json.dumps(o[k], sort_keys=True, default=str) for o in peers if k in o}) > 1]
        flags: list[str] = []
        words: list[str] = []
        for k in (k for k in differ if k in c):
            text = _option(k, c[k])
            if text:
                (flags if text.startswith("--") else words).append(text)
        labels.append(", ".join([" ".join([head(c), *flags]), *words]))
    return labels


def _option(key: str, value) -> str:
    """How a value reads in a label: ``1 epoch``, ``--drop-route L1``, ``store gtzan.zarr``; '' for an unset one."""
    if key == "epochs":
        return f"{value} epoch{'' if value == 1 else 's'}"
    if key == "store":
        return Path(str(value)).name if value else ""
    if key == "fold":
        return "" if value is None else f"fold {value}"
    if key == "drop_routes":
        return " ".join(f"--drop-route {r}" for r in value or [])
    if key == "model_options":
        return " ".join(f"--model-option {k}={v}" for k, v in sorted((value or {}).items()))
    if value is None or value == [] or value == {}:
        return ""
    flag = "--" + {"channels": "width"}.get(key, key).replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    if isinstance(value, list):
        return f"{flag} " + ",".join(map(str, value))
    return f"{flag} {value}"


__all__ = [
    "FILE",
    "NOT_RESULT",
    "compute",
    "distinguishing",
    "fingerprint",
    "record",
    "resolved",
    "store_identity",
    "scored_on",
    "write",
]
