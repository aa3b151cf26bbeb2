"""``docs/results.md`` and ``docs/img/realmusic.png`` from ``benchmarks/results/realmusic.json``.

Every headline number carries its 95 % bootstrap interval over the test clips: of the run for one
seed, of the seeds' mean for several (``mrnet.train.predictions.pooled_intervals`` over the runs'
``predictions.parquet``, the interval ``mrnet-compare`` prints). A configuration not measured in this
results file is taken from the earlier one (:data:`EARLIER`) and marked so, never averaged with new
runs; "What changed" sets each configuration's new numbers beside its earlier ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import REPO, RESULTS, log
from benchmarks.realmusic_runs import CANDIDATES, CONFIGS, RESULT_FILE, recommended, summary

#: The measurement made before the recipes of issue 20 (per-model class weights, intervals, predictions):
#: kept to show what changed, and to fill rows not measured again.
EARLIER = RESULTS / "realmusic-2026-12-01.json"


def intervals(results: dict) -> dict[str, dict]:
    """Per configuration measured in ``results``: the 95 % bootstrap interval over test clips of its mean test
    accuracy and macro-F1 over seeds, from the runs' predictions (kept in the results file, so that ``--render``
    works where the runs are not)."""
    from mrnet.train.predictions import pooled_intervals

    kept = results.setdefault("intervals", {})
    for name in CONFIGS:
        runs = [Path(r["run"]) for r in results.get("runs", []) if r["config"] == name]
        key = ",".join(sorted(p.name for p in runs))
        if runs and kept.get(name, {}).get("runs") != key and all(p.is_dir() for p in runs):
            pooled = pooled_intervals(runs, ("accuracy", "macro_f1"))
            if pooled:
                kept[name] = {"runs": key, **pooled["interval"]}
    return {name: v for name, v in kept.items() if name in CONFIGS}


def table_rows(results: dict, earlier: dict) -> tuple[dict[str, dict], set[str]]:
    """The rows of the page: each configuration measured in ``results`` (with its interval), and each one only the
    earlier results file has (named in the returned set; never averaged with new runs)."""
    rows = summary(results)
    for name, bounds in intervals(results).items():
        if name in rows:
            rows[name] |= {"acc_ci": bounds["accuracy"], "f1_ci": bounds["macro_f1"]}
    old = summary(earlier) if earlier else {}
    only_old = {name for name in old if name not in rows}
    rows |= {name: old[name] for name in only_old}
    return {name: rows[name] for name in CONFIGS if name in rows}, only_old


def plot(results: dict, rows: dict[str, dict], only_old: set[str], path: Path) -> Path:
    """Test accuracy and macro-F1 per configuration: the mean as a bar, each seed as a dot, the probe as a line."""
    from matplotlib.figure import Figure

    best = recommended(rows)
    names = [n for n in CONFIGS if n in rows]
    fig = Figure(figsize=(11, 4.9))
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "acc", "test accuracy (%)"), (axes[1], "f1", "test macro-F1")):
        scale = 100 if key == "acc" else 1
        for i, n in enumerate(names):
            r = rows[n]
            color = "0.6" if n == "linear" else ("tab:green" if n == best else "tab:blue")
            ax.bar(i, scale * r[key], color=color, alpha=0.8, hatch="//" if n in only_old else None, edgecolor="white")
            ci = r.get(key + "_ci")  # the 95 % interval of the mean; the seeds' spread where none was kept
            low, high = ci if ci else (r[key] - r[key + "_sd"], r[key] + r[key + "_sd"])
            ax.errorbar(
                i, scale * r[key], yerr=[[scale * (r[key] - low)], [scale * (high - r[key])]], color="black", capsize=4
            )
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
        ax.set_xticks(
            range(len(names)), [n + " †" * (n in only_old) for n in names], rotation=25, ha="right", fontsize=8
        )
        ax.set_title(title)
        top = max(
            scale * max(max(r[key + "s"]), r[key] + r[key + "_sd"], (r.get(key + "_ci") or [0, 0])[1])
            for r in rows.values()
        )
        ax.set_ylim(0, 1.3 * top)
        ax.legend(fontsize=7, loc="upper center", ncol=3)
    fig.suptitle(
        f"real-music benchmark: {results['dataset']['classes']} soundtracks, {results['dataset']['clips']} clips of 30 s\n"
        "(bars: mean over seeds; whiskers: its 95 % bootstrap interval over test clips; dots: single seeds"
        + ("; † hatched: the earlier measurement, whiskers ± sample std over seeds)" if only_old else ")"),
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


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


#: How the code was checked not to have changed MRNet's or the probe's numbers when the earlier measurement
#: ran on another CPU: the same runs on this machine with the code before issues 20 and 22.
SAME_CPU_CHECK = (
    "Checked on this machine instead: the code before those changes (commit 16068e8, run from a `git worktree` with "
    "its folders on `PYTHONPATH`) trains `--preset tiny --no-test-curve --seed 0` on this store with one thread to "
    "the same 40 epochs as the `tiny` run below, to every digit (losses, accuracies, F1, the chosen epoch 39: valid "
    "52.1 %, test 56.6 %), and its probe gives the same C = 1, valid 40.7 % and test 42.6 %. On this machine the "
    "probe's one moved validation clip (`colobot_music004-0060`, its two most probable classes 0.455 and 0.453) "
    "flips back when NumPy is limited to AVX2 kernels; so does the scikit-learn reference below."
)


def changes(results: dict, earlier: dict) -> list[str]:
    """ "What changed": each configuration measured both now and in :data:`EARLIER` (``earlier``), seed by seed."""
    if not earlier:
        return []
    before = {(r["config"], r["seed"]): r for r in earlier.get("runs", [])}
    other_cpu = earlier.get("machine", {}).get("cpu") != results.get("machine", {}).get("cpu")
    lines = [
        "## What changed since the earlier measurement",
        "",
        f"The earlier measurement ({earlier.get('started', '?')}, `benchmarks/results/{EARLIER.name}`) was made before each model "
        "got its own published recipe, per-track predictions and intervals (issue 20), and before the code was restructured "
        "(issue 22). MRNet's presets kept their recipe (MRNet's paper weights the loss by inverse class frequency, and so "
        "do its presets), and the probe has no randomness. A one-thread CPU run repeats to every digit on the same kind "
        "of CPU, but not across CPUs whose floating-point kernels differ (AVX2 against AVX-512: torch, OpenBLAS and "
        "NumPy pick their kernels by instruction set)"
        + (
            f", and the earlier measurement ran on another CPU ({earlier['machine']['cpu']}) than this one "
            f"({results['machine']['cpu']}): seed-by-seed differences below are the CPU's, not the code's. {SAME_CPU_CHECK}"
            if other_cpu
            else ", as here: a seed that differs below is a changed result."
        ),
        "",
        "Accuracy % per seed, earlier → now:",
        "",
        "| configuration | seed | test, earlier → now | valid, earlier → now | same? |",
        "|---|---|---|---|---|",
    ]
    for r in results.get("runs", []):
        old = before.get((r["config"], r["seed"]))
        if old:
            test, valid = (
                (old[k] == r[k], f"{100 * old[k]:.1f} → {100 * r[k]:.1f}") for k in ("test_accuracy", "valid_accuracy")
            )
            same = "identical" if test[0] and valid[0] else ("differs (other CPU)" if other_cpu else "**differs**")
            lines.append(f"| {r['config']} | {r['seed']} | {test[1]} | {valid[1]} | {same} |")
    return lines + [""]


def _pm(mean: float, sd: float, n: int, pct: bool = True, ci: list[float] | None = None) -> str:
    """``54.7 ± 4.0 [47.1, 61.8]``: mean ± sample std over ``n`` seeds (none for one), the interval in brackets."""
    scale, digits = (100, 1) if pct else (1, 3)
    text = f"{scale * mean:.{digits}f}" + (f" ± {scale * sd:.{digits}f}" if n > 1 else "")
    return text + (f" [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]" if ci else "")


def render() -> Path:
    """docs/results.md and docs/img/realmusic.png from benchmarks/results/realmusic.json."""
    results = json.loads(RESULT_FILE.read_text())
    earlier = json.loads(EARLIER.read_text()) if EARLIER.exists() else {}
    rows, only_old = table_rows(results, earlier)
    RESULT_FILE.write_text(json.dumps(results, indent=2) + "\n")  # with the intervals table_rows computed
    data, ref = results["dataset"], results["sklearn_probe"]
    best = recommended(rows)
    image = plot(results, rows, only_old, REPO / "docs" / "img" / "realmusic.png")
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
        "Runs are seeded and deterministic on one CPU thread, so the accuracies repeat on the same kind of CPU; the minutes do not "
        "(other jobs shared the cores)." + (f" {results['note']}" if results.get("note") else ""),
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
        "Test numbers of the checkpoint chosen on the validation split (the test split chose nothing): mean ± sample "
        "standard deviation over seeds, and in brackets the 95 % bootstrap interval over the test clips of that mean "
        "(1,000 resamples of the clips, each resample scored by every seed; `mrnet-compare` prints the same). "
        + (
            "Rows marked † were not measured again in this run: they are the earlier measurement "
            f"({EARLIER.name}), made before per-track predictions were kept, so they have no interval."
            if only_old
            else ""
        ),
        "",
        "| configuration | what | seeds | test accuracy % | test macro-F1 | valid accuracy % | parameters | minutes per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        bold = "**" if name in (best, "linear") else ""
        mark = " †" if name in only_old else ""
        lines.append(
            f"| {bold}{name}{bold}{mark} | {CONFIGS[name][0]} | {r['n']} | {bold}{_pm(r['acc'], r['acc_sd'], r['n'], ci=r.get('acc_ci'))}{bold} | "
            f"{_pm(r['f1'], r['f1_sd'], r['n'], pct=False, ci=r.get('f1_ci'))} | {100 * r['valid']:.1f} | {r['parameters']:,} | {r['minutes']:.1f} |"
        )
    lines += ["", f"![test accuracy and macro-F1 per configuration]({image.relative_to(REPO / 'docs').as_posix()})", ""]
    lines += changes(results, earlier)
    if "linear" in rows:
        # the two sides of the target from one measurement: the earlier probe beside an earlier MRNet row
        probe = summary(earlier)["linear"] if best in only_old else rows["linear"]
        gap = 100 * (rows[best]["acc"] - probe["acc"])
        met = "met" if gap >= 10 else "**not met**"
        lines += [
            "## The target",
            "",
            f"MRNet with the recommended CPU preset (`--preset small`, i.e. `{best}`: Mel default normalisation `none`, "
            f"{rows[best]['epochs']} epochs) against the linear probe: **{gap:+.1f} points** of test accuracy as a mean over "
            f"{rows[best]['n']} seeds (target: at least +10; {met}). Macro-F1: {rows[best]['f1']:.3f} ± {rows[best]['f1_sd']:.3f} "
            f"against {probe['f1']:.3f}."
            + (" Both sides are the earlier measurement (†)." if best in only_old else ""),
            "",
            "The preset's length was chosen like its normalisation, on mean validation accuracy: "
            + ", ".join(
                f"`{n}`{' †' * (n in only_old)} {100 * rows[n]['valid']:.1f} %" for n in CANDIDATES if n in rows
            )
            + "."
            + (
                " The choice was made on the earlier measurement (†), where both were measured; the two numbers here are "
                "from two measurements and are not a comparison."
                if len({n in only_old for n in CANDIDATES if n in rows}) > 1
                else ""
            ),
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
