"""Every model on the same data, one command: ``python -m benchmarks.zoo [--dataset realmusic|demo|both]``.

Run from the clone's root (``benchmarks`` is not installed with ``mrnet``), or from anywhere with the clone
on ``PYTHONPATH``; every path it uses is absolute (the clone, ``~/.cache/mrnet/bench``), never the working folder.

For each dataset it makes one store per feature profile the models read, from the same audio and the
same labels table (so the same tracks in the same splits): ``mel`` (MRNet, the linear probe),
``mel128`` (MusicNeXt), ``mel96`` (FCN-5, MsE-CNN), ``mfcc`` (NNET2) and ``wave+mfcc`` (NNET1 and
MixNet: one store holds the waveform and the MFCC of each frame; NNET1 reads its waveform half), trains
every model with ``mrnet-train`` on one torch thread, and writes the comparison with ``mrnet-compare``
(``comparison.md``, ``.json``, ``.png`` in ``benchmarks/results/zoo-<dataset>/``), then the tables of
docs/models.md and the plots ``docs/img/zoo-<dataset>.png`` (``--render`` redoes only that).

**Datasets.** ``realmusic``: the real-music benchmark (``benchmarks.realmusic``: 14 game soundtracks,
648 clips of 30 s, split by source piece), fetched and cut by that module. ``demo``: the built-in
synthetic demo (``mrnet-extract demo``: 4 genres x 30 tracks of 8 s).

**CPU configurations, not the papers' recipes.** The ``<model>-paper`` presets are GPU recipes (50 to
200 epochs, MRNet's ``paper`` 1000); each baseline here runs its own preset with only what :data:`CPU`
and :data:`RUNS` change: batch 16 and learning rate 1e-3 (MRNet small's), few epochs (chosen from the
measured step times, ``benchmarks/steps.py``), the checkpoint chosen on validation accuracy for every
model (the papers' last epoch or lowest validation loss is not used), no test curve, and for MusicNeXt
the centre fragment as the evaluation unit and an L-softmax annealing fast enough for so few steps.
MRNet runs ``--preset small`` (its CPU preset) and the probe ``--model linear``: on the real-music
benchmark these are the runs ``python -m benchmarks.realmusic`` makes with the same options
(``small60-none``, ``linear``), reused when that benchmark has made them; on the demo, MRNet is ``make
demo``'s ``--preset tiny`` run. ``--skip MODEL`` leaves a model out (docs/models.md says which were
left out of the recorded comparison, and why).

Runs are resumable: a finished run (``report.json``) is kept, an unfinished one restarted. Nothing is
averaged over anything but seeds of one configuration (``mrnet-compare``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, RESULTS, log
from benchmarks.realmusic import HOME

DOC = REPO / "docs" / "models.md"
IMG = REPO / "docs" / "img"
DATASETS = ("realmusic", "demo")


@dataclass(frozen=True)
class Run:
    """One model's CPU configuration: which store it reads and its ``mrnet-train`` options."""

    model: str
    feature: str
    options: tuple[str, ...]
    what: str  # the configuration in words, for the docs
    seeds: int = 1
    reuse: str | None = None  # a run of benchmarks.realmusic with these options: HOME/runs/<reuse>-s<seed>


#: What every baseline's CPU configuration changes in its ``<model>-paper`` preset besides the epochs: MRNet
#: small's batch (16) and learning rate (1e-3; every recipe's schedule is constant for these few epochs: FCN's
#: SGD stages start at epoch 80), so that a few epochs are a few hundred optimiser
#: steps rather than a few dozen (the recipes' 5e-5 to 1e-4 at batch 32-64 are tuned for 50-200 epochs); the
#: checkpoint chosen on validation accuracy; no test curve (half the evaluation time). The rest of each recipe
#: stays: optimiser and weight decay, input and crop, augmentation, input normalisation, evaluation unit.
CPU = ("--batch-size", "16", "--lr", "0.001", "--select-metric", "accuracy", "--no-test-curve")

#: Per dataset: each model's CPU configuration. Epochs from the measured step times (figure 7 of docs/performance.md).
RUNS: dict[str, tuple[Run, ...]] = {
    "realmusic": (
        Run(
            "mrnet",
            "mel",
            ("--preset", "small", "--normalize", "none", "--epochs", "60"),
            "`--preset small`: C = 48, embedding 64, batch 16, 3 s crops, AdamW 1e-3 to 5e-4 cosine, 60 epochs (its CPU preset)",
            seeds=3,
            reuse="small60-none",
        ),
        Run(
            "linear",
            "mel",
            ("--model", "linear"),
            "`--model linear`: logistic regression on whole-clip statistics, C chosen on validation",
            reuse="linear",
        ),
        Run(
            "musicnext",
            "mel128",
            (
                "--preset",
                "musicnext-paper",
                "--epochs",
                "1",
                "--eval-unit",
                "center",
                "--epoch-mode",
                "crops",
                "--model-option",
                "lambda_gamma=0.02",
                *CPU,
            ),
            "`musicnext-paper` (256-frame fragments, Adam, flip, global z-score) at batch 16 and lr 1e-3, one random fragment per "
            "clip an epoch (not all ten), scored on the centre fragment (not ten), λ annealed with γ = 0.02 (λ ≈ 2 after 10 steps), 1 epoch",
        ),
        Run(
            "musicnext-softmax",
            "mel128",
            (
                "--preset",
                "musicnext-softmax-paper",
                "--epochs",
                "1",
                "--eval-unit",
                "center",
                "--epoch-mode",
                "crops",
                *CPU,
            ),
            "`musicnext-softmax-paper` (as MusicNeXt, softmax head) at batch 16 and lr 1e-3, one random fragment per clip an epoch, "
            "scored on the centre fragment, 1 epoch",
        ),
        Run(
            "nnet1",
            "wave+mfcc-window",
            ("--preset", "nnet1-paper", "--epochs", "5", *CPU),
            "`nnet1-paper` (2^18-sample windows, scored on the window from the clip's middle, Adam, weight decay 0.005, noise and time mask, unweighted loss) at batch 16 and lr 1e-3, 5 epochs",
        ),
        Run(
            "nnet2",
            "mfcc-window",
            ("--preset", "nnet2-paper", "--epochs", "15", *CPU),
            "`nnet2-paper` (256 frames of the authors' per-window MFCC, scored from the middle, Adam, weight decay 0.005, noise and masks, unweighted loss) at batch 16 and lr 1e-3, 15 epochs",
        ),
        Run(
            "mixnet",
            "wave+mfcc-window",
            ("--preset", "mixnet-paper", "--epochs", "5", *CPU),
            "`mixnet-paper` (both inputs of one window with the authors' MFCC, each half augmented by its own recipe, scored from the middle, Adam, no weight decay, unweighted loss) at batch 16 and lr 1e-3, 5 epochs",
        ),
        Run(
            "fcn5",
            "mel96",
            ("--preset", "fcn5-paper", "--epochs", "1", *CPU),
            "`fcn5-paper` (one 29.12 s crop, Adam, weight decay 1e-4, no augmentation; its SGD stages never begin) at lr 1e-3, 1 epoch",
        ),
        Run(
            "msecnn",
            "mel96",
            ("--preset", "msecnn-paper", "--epochs", "1", *CPU),
            "`msecnn-paper` (as FCN-5) at lr 1e-3, 1 epoch",
        ),
    ),
}


def _epochs(run: Run, epochs: int, what: str) -> Run:
    """``run`` with ``--epochs`` set to ``epochs`` (added if it had none)."""
    opts = list(run.options)
    if "--epochs" in opts:
        opts[opts.index("--epochs") + 1] = str(epochs)
    else:
        opts += ["--epochs", str(epochs)]
    return Run(run.model, run.feature, tuple(opts), what, seeds=run.seeds)


#: The demo (120 tracks of 8 s): MRNet as ``make demo`` trains it (``--preset tiny``), the baselines with the
#: real-music configurations and as many epochs as fit in a few minutes each (from the measured step times).
DEMO_EPOCHS = {"musicnext": 2, "musicnext-softmax": 2, "nnet1": 15, "nnet2": 40, "mixnet": 12, "fcn5": 2, "msecnn": 2}
RUNS["demo"] = (
    Run(
        "mrnet",
        "mel",
        ("--preset", "tiny"),
        "`--preset tiny` (what `make demo` trains): C = 32, batch 16, 3 s crops, 40 epochs",
        reuse="demo-tiny",
    ),
    Run("linear", "mel", ("--model", "linear"), RUNS["realmusic"][1].what),
    *(
        _epochs(
            r,
            DEMO_EPOCHS[r.model],
            r.what.rsplit(", ", 1)[0] + f", {DEMO_EPOCHS[r.model]} epoch{'s' * (DEMO_EPOCHS[r.model] > 1)}",
        )
        for r in RUNS["realmusic"][2:]
    ),
)


def _store_path(dataset: str, feature: str) -> Path:
    if dataset == "realmusic":
        return HOME / ("realmusic.zarr" if feature == "mel" else f"realmusic-{feature.replace('+', '-')}.zarr")
    return HOME / ("demo.zarr" if feature == "mel" else f"demo-{feature.replace('+', '-')}.zarr")


def stores(dataset: str, features: set[str]) -> dict[str, Path]:
    """One finished store per feature profile of ``dataset`` (extracted here unless already there)."""
    source = ["demo"]
    if dataset == "realmusic":
        from benchmarks import realmusic

        root, _ = realmusic.build()
        source = ["folder", "--root", str(root / "audio"), "--labels", str(root / "labels.csv")]
    out = {}
    for feature in sorted(features):
        path = out[feature] = _store_path(dataset, feature)
        if not (path / "manifest" / "tracks.parquet").exists():
            log(f"{dataset}: extracting {feature} into {path}")
            subprocess.run(
                [
                    "mrnet-extract",
                    *source,
                    "--features",
                    feature,
                    "--out",
                    str(path),
                    "--manifests-dir",
                    str(HOME / "manifests"),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
    return out


def run_dir(dataset: str, run: Run, seed: int) -> Path:
    """Where the run of ``seed`` is: the realmusic benchmark's own run with the same options if it made one, else under HOME/zoo."""
    if run.reuse:
        reused = HOME / "runs" / (run.reuse if dataset == "demo" else f"{run.reuse}-s{seed}")
        if seed == 0 or dataset != "demo":
            if (reused / "report.json").exists():
                return reused
    return HOME / "zoo" / dataset / f"{run.model}-s{seed}"


def command(store: Path, run: Run, seed: int, out: Path) -> list[str]:
    return ["mrnet-train", "--store", str(store), *run.options, "--seed", str(seed), "--out", str(out)]


def train_all(
    dataset: str,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    *,
    workers: int = 0,
    gpus: tuple[int, ...] = (),
    scheduler: str | None = None,
) -> list[Path]:
    """Every run of ``dataset`` (``only``: these models; ``skip``: not these), finished ones kept; returns the run folders.

    One after another here, or side by side as tasks on a Dask cluster (``workers`` CPU workers or one
    worker per GPU of ``gpus`` on this machine, or the cluster at ``scheduler``: the one extraction
    and ``mrnet-train --folds all`` use). A run that fails is named and the others go on."""
    runs = [r for r in RUNS[dataset] if (not only or r.model in only) and r.model not in (skip or ())]
    runs.sort(key=lambda r: r.model.startswith("musicnext"))  # the slowest last: the others' results come first
    paths = stores(dataset, {r.feature for r in runs})
    done, pending = [], []
    for run in runs:
        for seed in range(run.seeds):
            out = run_dir(dataset, run, seed)
            if not (out / "report.json").exists():
                pending.append(
                    (f"{dataset}: {run.model} seed {seed}", command(paths[run.feature], run, seed, out), out)
                )
            done.append(out)
    if not (workers or gpus or scheduler):
        for label, cmd, out in pending:
            train_one(label, cmd, out)
        return done
    from dask.distributed import Client, as_completed

    from mrnet.core.cluster import local_cluster

    cluster = None if scheduler else local_cluster(workers=workers or 1, gpus=gpus)
    with Client(scheduler or cluster) as client:
        futures = {client.submit(train_one, *job, pure=False): job[0] for job in pending}
        failed = {futures[f]: repr(f.exception()) for f in as_completed(futures) if f.status == "error"}
    if cluster is not None:
        cluster.close()
    for label, error in failed.items():
        log(f"{label} FAILED: {error}")
    return done


def train_one(label: str, cmd: list[str], out: Path) -> Path:
    """One ``mrnet-train`` run into a fresh ``out`` (an unfinished one starts over), timed in ``out/wall.txt``."""
    shutil.rmtree(out, ignore_errors=True)
    log(f"{label}: {' '.join(cmd)}")
    began = time.time()
    # one thread: on a shared 2-core machine a second intra-op thread mostly waits, and a CPU run's
    # numbers depend on the thread count
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    (out / "wall.txt").write_text(f"{time.time() - began:.0f}\n")
    log(f"{label} done in {(time.time() - began) / 60:.1f} min")
    return out


def compare(dataset: str, runs: list[Path]) -> Path:
    """``mrnet-compare`` over the runs into ``benchmarks/results/zoo-<dataset>/``; the plot also into docs/img."""
    folder = RESULTS / f"zoo-{dataset}"
    subprocess.run(
        ["mrnet-compare", *map(str, runs), "--out", str(folder)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    IMG.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "comparison.png", IMG / f"zoo-{dataset}.png")
    return folder


# --- docs/models.md ---------------------------------------------------------------------------------


def _minutes(run: Path) -> float | None:
    wall = run / "wall.txt"
    if wall.exists():
        return float(wall.read_text()) / 60
    from mrnet.train.report import training_seconds  # a probe's older metrics.jsonl holds cumulative seconds

    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return training_seconds(history) / 60


def table(dataset: str) -> str:
    """The Markdown table of ``dataset``'s comparison: mrnet-compare's numbers, each run's configuration and time."""
    from mrnet.train.compare import cell

    rows = json.loads((RESULTS / f"zoo-{dataset}" / "comparison.json").read_text())
    runs = {r.model: r for r in RUNS[dataset]}
    lines = [
        "| model | store (feature) | CPU configuration (not the paper's recipe) | seeds | test accuracy % [95 % interval] | test macro-F1 [95 % interval] | "
        "parameters | epochs (selected) | minutes per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: list(runs).index(r["model"])):
        reports = [json.loads((Path(p) / "report.json").read_text()) for p in r["runs"]]
        selected = ", ".join(str(x["selection"]["epoch"]) for x in reports)
        epochs = (
            "–" if r["model"] == "linear" else reports[0].get("epochs_trained", "?")
        )  # the probe is fitted, not trained by epochs
        minutes = [m for m in (_minutes(Path(p)) for p in r["runs"]) if m is not None]
        # mrnet-compare's cells: mean (± std over seeds) and the 95 % bootstrap interval over test tracks in brackets
        acc, f1 = cell(r, "accuracy"), cell(r, "macro_f1")
        trained = epochs if epochs == "–" else f"{epochs} ({selected})"
        lines.append(
            f"| **{r['model']}** | `{Path(r['store']).name}` ({r['feature']}) | {runs[r['model']].what} | {r['n']} | {acc} | {f1} | "
            f"{r['parameters']:,} | {trained} | {sum(minutes) / max(1, len(minutes)):.1f} |"
        )
    return "\n".join(lines)


def render(datasets=DATASETS) -> Path:
    """Replace each dataset's table between its markers in docs/models.md (``<!-- zoo:NAME -->`` ... ``<!-- /zoo:NAME -->``)."""
    text = DOC.read_text()
    for dataset in datasets:
        if not (RESULTS / f"zoo-{dataset}" / "comparison.json").exists():
            continue
        begin, end = f"<!-- zoo:{dataset} -->", f"<!-- /zoo:{dataset} -->"
        if begin not in text or end not in text:
            raise SystemExit(f"{DOC} has no {begin} ... {end} markers for the {dataset} table")
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + table(dataset) + "\n" + end + rest.split(end, 1)[1]
    DOC.write_text(text)
    log(f"wrote {DOC}")
    return DOC


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=(*DATASETS, "both"), default="both", help="which dataset (default: both)")
    parser.add_argument(
        "--only", action="append", help="train only these models (repeatable); the comparison takes every finished run"
    )
    parser.add_argument("--skip", action="append", help="train every model but these (repeatable)")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite docs/models.md's tables from benchmarks/results/zoo-*/"
    )
    parser.add_argument("--print", action="store_true", help="print each run's mrnet-train command and run nothing")
    parser.add_argument(
        "--workers", type=int, default=0, help="runs side by side on a local Dask cluster of N CPU workers"
    )
    parser.add_argument("--gpus", default="", help="runs side by side, one per GPU of this list, e.g. 0,1,2,3")
    parser.add_argument(
        "--scheduler", help="runs as tasks on this Dask cluster, e.g. tcp://host:8786 (the stores must be reachable)"
    )
    args = parser.parse_args(argv)
    datasets = DATASETS if args.dataset == "both" else (args.dataset,)
    if args.print:
        for dataset in datasets:
            for run in RUNS[dataset]:
                for seed in range(run.seeds):
                    print(" ".join(command(_store_path(dataset, run.feature), run, seed, run_dir(dataset, run, seed))))
        return
    if not args.render:
        for dataset in datasets:
            train_all(
                dataset,
                args.only,
                args.skip,
                workers=args.workers,
                gpus=tuple(int(g) for g in args.gpus.split(",") if g),
                scheduler=args.scheduler,
            )
            finished = [run_dir(dataset, r, s) for r in RUNS[dataset] for s in range(r.seeds)]
            compare(dataset, [p for p in finished if (p / "report.json").exists()])
    render(datasets)


if __name__ == "__main__":
    main()
