"""The measured grid of the real-music benchmark, its results file and ``docs/results.md``.

Every configuration is an ordinary ``mrnet-train`` run on the benchmark's store (official split by
source piece), one per seed, in ``HOME/runs/<config>-s<seed>``; finished runs are kept and reused.
Besides them, ``sklearn_probe`` is the reference the in-tool probe is checked against: scikit-learn's
logistic regression on each Mel band's mean and standard deviation over the whole clip, its
regularisation ``C`` chosen on the validation split.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, _cpu_model, log, now_utc
from benchmarks.realmusic import HOME

#: name -> (what it is, mrnet-train options). MRNet runs once per seed; the probe once (no randomness).
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "linear": ("linear probe: `--model linear`", ["--model", "linear"]),
    "tiny-authors": (
        "MRNet `--preset tiny` as it was: instance norm, dropout 0.5, noise p 0.7, 2 + 2 masks",
        [
            "--preset",
            "tiny",
            "--normalize",
            "instance",
            "--dropout",
            "0.5",
            "--noise-p",
            "0.7",
            "--time-masks",
            "2",
            "--feature-masks",
            "2",
            "--no-test-curve",
        ],
    ),
    "tiny": ("MRNet `--preset tiny` (now)", ["--preset", "tiny", "--no-test-curve"]),
    "small-instance": (
        "MRNet `--preset small --epochs 30 --normalize instance`",
        ["--preset", "small", "--normalize", "instance", "--epochs", "30"],
    ),
    "small-stored": (
        "MRNet `--preset small --epochs 30 --normalize stored`",
        ["--preset", "small", "--normalize", "stored", "--epochs", "30"],
    ),
    "small-none": (
        "MRNet `--preset small --epochs 30 --normalize none`",
        ["--preset", "small", "--normalize", "none", "--epochs", "30"],
    ),
    "small60-none": (
        "MRNet `--preset small` (60 epochs; Mel default normalisation none)",
        ["--preset", "small", "--normalize", "none", "--epochs", "60"],
    ),
}
#: The recommended CPU preset is one of these (the Mel default normalisation, 30 or 60 epochs): the one with
#: the best mean validation accuracy (``recommended``); ``--preset small`` is set to it.
CANDIDATES = ("small-none", "small60-none")
#: The order the runs are made in: one seed of the ablation, then every seed of it (which decides the Mel
#: default, on validation), the tiny preset as it was and as it is (which uses that default), the demo
#: check, the small preset run twice as long (its best epochs were its last ones), then more tiny seeds.
PLAN = [
    ("linear", 0),
    ("small-stored", 0),
    ("small-instance", 0),
    ("small-none", 0),
    ("small-stored", 1),
    ("small-none", 1),
    ("small-stored", 2),
    ("small-none", 2),
    ("small-instance", 1),
    ("small-instance", 2),
    ("tiny-authors", 0),
    ("tiny", 0),
    ("demo", 0),
    ("small60-none", 0),
    ("small60-none", 1),
    ("small60-none", 2),
    ("tiny-authors", 1),
    ("tiny", 1),
    ("tiny-authors", 2),
    ("tiny", 2),
]
RESULT_FILE = RESULTS / "realmusic.json"


def sklearn_probe(location: Path) -> dict:
    """Logistic regression on whole-clip per-band mean and std, ``C`` chosen on validation accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from mrnet.store.reader import FeatureStore
    from mrnet.train.splits import split_tracks

    store = FeatureStore.open(str(location))
    splits = split_tracks(store.tracks)

    def features(part):
        rows = []
        for key in part["key"]:
            x = store.read(key).astype(np.float32)  # (1, 1, T, 48)
            rows.append(np.concatenate([x.mean(axis=2).ravel(), x.std(axis=2).ravel()]))
        return np.stack(rows), part["label"].to_numpy()

    (xtr, ytr), (xva, yva), (xte, yte) = (features(p) for p in (splits.train, splits.valid, splits.test))
    scaler = StandardScaler().fit(xtr)
    xtr, xva, xte = scaler.transform(xtr), scaler.transform(xva), scaler.transform(xte)
    grid = [10.0**k for k in range(-4, 4)]
    scores = []
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(xtr, ytr)
        scores.append((clf.score(xva, yva), c, clf))
    valid, c, clf = max(scores, key=lambda s: (s[0], -s[1]))  # ties: the stronger regularisation
    from sklearn.metrics import f1_score

    pred = clf.predict(xte)
    return {
        "C": c,
        "grid": grid,
        "valid_accuracy": valid,
        "test_accuracy": float((pred == yte).mean()),
        "test_macro_f1": float(f1_score(yte, pred, average="macro")),
    }


def run_one(location: Path, name: str, seed: int) -> dict:
    """One ``mrnet-train`` run (kept if it finished before); its numbers."""
    import os
    import subprocess

    out = HOME / "runs" / f"{name}-s{seed}"
    if not (out / "report.json").exists():
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        log(f"{name} seed {seed}")
        # one thread: on a shared 2-core machine a second intra-op thread mostly waits (and the numbers of a
        # CPU run depend on the thread count, so it is fixed)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(
            ["mrnet-train", "--store", str(location), *CONFIGS[name][1], "--seed", str(seed), "--out", str(out)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    report = json.loads((out / "report.json").read_text())
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {
        "config": name,
        "seed": seed,
        "run": str(out),
        "test_accuracy": report["test"]["accuracy"],
        "test_macro_f1": report["test"]["macro_f1"],
        "valid_accuracy": report["valid"]["accuracy"],
        "epoch": report["selection"]["epoch"],
        "epochs": report["epochs_trained"],
        "normalize": report.get("normalize"),
        "parameters": report["model"]["parameters"],
        "seconds": round(sum(r.get("seconds", 0) for r in history), 1),
    }


def run_all(location: Path, info: dict, *, seeds: int = 3, only: list[str] | None = None) -> dict:
    """Every configuration for ``seeds`` seeds (the probe once: its fit has no randomness), saved as it goes."""
    import torch

    results = json.loads(RESULT_FILE.read_text()) if RESULT_FILE.exists() else {}
    results.update(
        dataset=info,
        store=str(location),
        started=results.get("started") or now_utc(),
        machine={
            "cpu": _cpu_model(),
            "logical_cpus": os.cpu_count(),
            "torch_threads": 1,
            "python": platform.python_version(),
            "torch": torch.__version__,
            # the instruction set torch's CPU kernels use: a one-thread run repeats exactly only on the same one
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
    )
    results["sklearn_probe"] = sklearn_probe(location)
    rows = {(r["config"], r["seed"]): r for r in results.get("runs", [])}
    for name, seed in PLAN:
        if (only and name not in only) or seed >= seeds:
            continue
        if name == "demo":
            results["demo"] = demo_check()
            continue
        rows[(name, seed)] = run_one(location, name, seed)
        results["runs"] = sorted(rows.values(), key=lambda r: (list(CONFIGS).index(r["config"]), r["seed"]))
        results["finished"] = now_utc()
        RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULT_FILE.write_text(json.dumps(results, indent=2) + "\n")
    return results


def summary(results: dict) -> dict[str, dict]:
    """Per configuration: mean and sample std over seeds of test accuracy and macro-F1, and the rest."""
    out = {}
    for name in CONFIGS:
        rows = [r for r in results.get("runs", []) if r["config"] == name]
        if not rows:
            continue
        acc, f1 = np.array([r["test_accuracy"] for r in rows]), np.array([r["test_macro_f1"] for r in rows])
        sd = lambda a: float(a.std(ddof=1)) if a.size > 1 else 0.0  # noqa: E731
        out[name] = {
            "n": len(rows),
            "acc": float(acc.mean()),
            "acc_sd": sd(acc),
            "f1": float(f1.mean()),
            "f1_sd": sd(f1),
            "valid": float(np.mean([r["valid_accuracy"] for r in rows])),
            "accs": acc.tolist(),
            "f1s": f1.tolist(),
            "minutes": float(np.mean([r["seconds"] for r in rows])) / 60,
            "parameters": rows[0]["parameters"],
            "epochs": rows[0]["epochs"],
        }
    return out


def recommended(rows: dict[str, dict]) -> str:
    """The candidate with the best mean validation accuracy (the test split chose nothing)."""
    return max((n for n in CANDIDATES if n in rows), key=lambda n: rows[n]["valid"])


# --- the demo, before and after (make demo must keep learning) ---------------------------------------


def demo_check() -> dict:
    """``make demo`` with the tiny preset as it is now and as it was (instance norm, heavy regularisation)."""
    import os
    import subprocess

    store = HOME / "demo.zarr"
    if not (store / "manifest" / "tracks.parquet").exists():
        subprocess.run(
            ["mrnet-extract", "demo", "--out", str(store), "--manifests-dir", str(HOME / "manifests")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    out = {}
    for name, options in (("tiny", []), ("tiny-authors", CONFIGS["tiny-authors"][1][2:-1])):
        run = HOME / "runs" / f"demo-{name}"
        if not (run / "report.json").exists():
            import shutil

            shutil.rmtree(run, ignore_errors=True)
            log(f"demo, {name}")
            began = time.time()
            subprocess.run(
                ["mrnet-train", "--store", str(store), "--preset", "tiny", *options, "--out", str(run)],
                check=True,
                stdout=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            (run / "wall.txt").write_text(f"{time.time() - began:.0f}\n")
        report = json.loads((run / "report.json").read_text())
        out[name] = {
            "test_accuracy": report["test"]["accuracy"],
            "test_macro_f1": report["test"]["macro_f1"],
            "epoch": report["selection"]["epoch"],
            "wall_s": float((run / "wall.txt").read_text()) if (run / "wall.txt").exists() else None,
        }
    return out
