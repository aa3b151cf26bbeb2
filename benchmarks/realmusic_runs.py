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

from benchmarks.common import REPO, RESULTS, _cpu_model, log, now_utc
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


def plot(results: dict, path: Path) -> Path:
    """Test accuracy and macro-F1 per configuration: the mean as a bar, each seed as a dot, the probe as a line."""
    from matplotlib.figure import Figure

    rows = summary(results)
    best = recommended(rows)
    names = [n for n in CONFIGS if n in rows]
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "acc", "test accuracy (%)"), (axes[1], "f1", "test macro-F1")):
        scale = 100 if key == "acc" else 1
        for i, n in enumerate(names):
            r = rows[n]
            color = "0.6" if n == "linear" else ("tab:green" if n == best else "tab:blue")
            ax.bar(i, scale * r[key], color=color, alpha=0.8)
            ax.errorbar(i, scale * r[key], yerr=scale * r[key + "_sd"], color="black", capsize=4)
            ax.plot([i] * len(r[key + "s"]), [scale * v for v in r[key + "s"]], "o", color="black", ms=3)
        if "linear" in rows:
            ax.axhline(scale * rows["linear"][key], color="0.3", ls="--", lw=1, label="linear probe")
            ax.axhline(
                scale * (rows["linear"][key] + (0.10 if key == "acc" else 0)),
                color="tab:red",
                ls=":",
                lw=1,
                label="probe + 10 points",
            ) if key == "acc" else None
        ax.axhline(scale / results["dataset"]["classes"], color="0.7", lw=1, label="chance")
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(title)
        top = max(scale * max(max(r[key + "s"]), r[key] + r[key + "_sd"]) for r in rows.values())
        ax.set_ylim(0, 1.3 * top)
        ax.legend(fontsize=7, loc="upper center", ncol=3)
    fig.suptitle(
        f"real-music benchmark: {results['dataset']['classes']} soundtracks, {results['dataset']['clips']} clips of 30 s "
        f"(mean ± sample std over seeds, dots: single seeds)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


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


# --- docs/results.md -----------------------------------------------------------------------------------


#: What was tried on the way and is not in the table (validation numbers only; the test split was not looked at).
NOTES = (
    "Tried on the way and not kept (validation numbers; the test split chose nothing): the `small` preset with "
    "`--normalize stored`, 40 epochs and the cosine down to 1e-5 (instead of 30 epochs down to 5e-4) reached a best "
    "validation accuracy of 50.0 % against 50.7 % for the same seed. A first in-tool probe, trained by gradient descent "
    "on random 30 s crops, reached 42.1 % on validation but 36.8 % on test, below the scikit-learn reference (41.9 %); "
    "since the probe must be at least as strong as that reference, it is now fitted the way the reference is "
    "(logistic regression on whole-track statistics, C chosen on validation). `small-stored` seed 0 is the pilot run "
    "of that configuration (the same command line, made before the grid started) and was kept.\n\n"
    "**In what order things were decided**, since it matters for how far to trust the last row: the normalisation "
    "default was fixed on validation before any MRNet test number was looked at. The 60-epoch variant was tried "
    "afterwards, once the 30-epoch grid had finished and its test numbers had been seen (+8.3 points over the probe, "
    "short of the target). It was motivated by the validation curves (the 30-epoch `none` runs chose epochs 29, 29 "
    "and 24 of 30: still rising) and 60 epochs replaced 30 in the preset on mean validation accuracy alone, but it "
    "is one more configuration tried after seeing test numbers; no other was."
)


def _pm(mean: float, sd: float, n: int, pct: bool = True) -> str:
    if pct:
        return f"{100 * mean:.1f} ± {100 * sd:.1f}" if n > 1 else f"{100 * mean:.1f}"
    return f"{mean:.3f} ± {sd:.3f}" if n > 1 else f"{mean:.3f}"


def render() -> Path:
    """docs/results.md and docs/img/realmusic.png from benchmarks/results/realmusic.json."""
    results = json.loads(RESULT_FILE.read_text())
    rows, data, ref = summary(results), results["dataset"], results["sklearn_probe"]
    best = recommended(rows)
    image = plot(results, REPO / "docs" / "img" / "realmusic.png")
    lines = [
        "# Results on real music",
        "",
        "Measured with one command on a fresh machine (Debian or Ubuntu, network to the package archive):",
        "",
        "```bash",
        "python -m benchmarks.realmusic      # fetches, builds the dataset and the store, runs every configuration, writes this page",
        "python -m benchmarks.realmusic --render   # this page again from benchmarks/results/realmusic.json",
        "```",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['logical_cpus']} logical CPUs shared with other jobs, "
        f"torch {results['machine']['torch']} on one thread per run; runs from {results['started']} to {results.get('finished', '?')}. "
        "Runs are seeded and deterministic on a CPU, so the accuracies repeat on this machine; the minutes do not "
        "(other jobs shared the cores).",
        "",
        "## The benchmark",
        "",
        f"**{data['classes']} classes, {data['clips']} clips of {data['clip_seconds']:g} s**: the soundtracks of free games that "
        "Debian ships, one class per package (one composer or team, one style), at most "
        f"{data['clips_per_track']} clips per piece and {data['clips_per_class']} per class, **split by source piece** "
        "(no piece on two sides; about 60 / 20 / 20 % of each class's clips). Laid out as a `folder` dataset with a labels "
        "table (path, genre, artist = the piece, split) and extracted with `--features mel` (48-bin log-Mel, 62.5 frames/s). "
        f"Chance is {100 / data['classes']:.1f} %. `benchmarks/realmusic.py` says which packages are left out and why.",
        "",
        "| class | Debian package | clips train / valid / test | pieces train / valid / test |",
        "|---|---|---|---|",
    ]
    for name, c in data["per_class"].items():
        clips, pieces = c["clips"], c["pieces"]
        lines.append(
            f"| {name} | `{c['package']}` | {clips['train']} / {clips['valid']} / {clips['test']} | "
            f"{pieces.get('train', 0)} / {pieces.get('valid', 0)} / {pieces.get('test', 0)} |"
        )
    lines += [
        "",
        "## Results",
        "",
        "Test numbers of the checkpoint chosen on the validation split (the test split chose nothing), mean ± sample "
        "standard deviation over seeds.",
        "",
        "| configuration | what | seeds | test accuracy % | test macro-F1 | valid accuracy % | parameters | minutes per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        bold = "**" if name in (best, "linear") else ""
        lines.append(
            f"| {bold}{name}{bold} | {CONFIGS[name][0]} | {r['n']} | {bold}{_pm(r['acc'], r['acc_sd'], r['n'])}{bold} | "
            f"{_pm(r['f1'], r['f1_sd'], r['n'], pct=False)} | {100 * r['valid']:.1f} | {r['parameters']:,} | {r['minutes']:.1f} |"
        )
    lines += ["", f"![test accuracy and macro-F1 per configuration]({image.relative_to(REPO / 'docs').as_posix()})", ""]
    if "linear" in rows:
        gap = 100 * (rows[best]["acc"] - rows["linear"]["acc"])
        met = "met" if gap >= 10 else "**not met**"
        lines += [
            "## The target",
            "",
            f"MRNet with the recommended CPU preset (`--preset small`, i.e. `{best}`: Mel default normalisation `none`, "
            f"{rows[best]['epochs']} epochs) against the linear probe: **{gap:+.1f} points** of test accuracy as a mean over "
            f"{rows[best]['n']} seeds (target: at least +10; {met}). Macro-F1: {rows[best]['f1']:.3f} ± {rows[best]['f1_sd']:.3f} "
            f"against {rows['linear']['f1']:.3f}.",
            "",
            "The preset's length was chosen like its normalisation, on mean validation accuracy: "
            + ", ".join(f"`{n}` {100 * rows[n]['valid']:.1f} %" for n in CANDIDATES if n in rows)
            + ".",
            "",
        ]
    ablation = [n for n in ("small-instance", "small-stored", "small-none") if n in rows]
    if ablation:
        lines += [
            "## Input normalisation on Mel (the ablation)",
            "",
            "The `small` preset at 30 epochs with each `--normalize` choice; the default for Mel is the one with the "
            "best mean **validation** accuracy (the test split chose nothing):",
            "",
            "| `--normalize` | seeds | valid accuracy % | test accuracy % | test macro-F1 |",
            "|---|---|---|---|---|",
        ]
        for n in ablation:
            r = rows[n]
            lines.append(
                f"| {n.split('-')[1]} | {r['n']} | {100 * r['valid']:.1f} | {_pm(r['acc'], r['acc_sd'], r['n'])} | "
                f"{_pm(r['f1'], r['f1_sd'], r['n'], pct=False)} |"
            )
        lines += ["", NOTES, ""]
    lines += [
        "## The linear probe, checked",
        "",
        f"Reference: scikit-learn `LogisticRegression` on each band's mean and standard deviation over the whole clip "
        f"(standardised on train), C from {ref['grid'][0]:g} to {ref['grid'][-1]:g} chosen on validation accuracy: C = {ref['C']:g}, "
        f"valid {100 * ref['valid_accuracy']:.1f} %, **test {100 * ref['test_accuracy']:.1f} %**, macro-F1 {ref['test_macro_f1']:.3f} "
        "(`benchmarks.realmusic_runs.sklearn_probe`).",
    ]
    if "linear" in rows:
        lines += [
            f"The tool's probe (`mrnet-train --model linear`, the same model family fitted the same way inside the tool, "
            f"on the stored float16 values after its input normalisation): **test {100 * rows['linear']['acc']:.1f} %**, "
            f"macro-F1 {rows['linear']['f1']:.3f}. It has no randomness, so one run stands for every seed."
        ]
    lines += [""]
    demo = results.get("demo")
    if demo:
        lines += [
            "## The demo",
            "",
            "`mrnet-extract demo && mrnet-train --store store/demo.zarr --preset tiny` (what `make demo` runs):",
            "",
            "| tiny preset | test accuracy | macro-F1 | selected epoch | wall clock |",
            "|---|---|---|---|---|",
        ]
        for name, label in (
            ("tiny-authors", "as it was (instance norm, dropout 0.5, heavy augmentation)"),
            ("tiny", "now"),
        ):
            if name in demo:
                d = demo[name]
                lines.append(
                    f"| {label} | {100 * d['test_accuracy']:.1f} % | {d['test_macro_f1']:.3f} | {d['epoch']} | "
                    f"{(d['wall_s'] or 0) / 60:.1f} min |"
                )
        lines += [""]
    path = REPO / "docs" / "results.md"
    path.write_text("\n".join(lines) + "\n")
    log(f"wrote {path}")
    return path
