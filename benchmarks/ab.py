"""``python -m benchmarks.ab BEFORE [AFTER] [--pairs 5] [--only loader,write]``: did a change slow the loader or writer?

Runs one benchmark harness, this checkout's, against two versions of ``mrnet``: ``BEFORE`` (a commit,
checked out into a temporary detached worktree) and ``AFTER`` (a commit, or ``.``, the default: this
checkout as it is, uncommitted changes included). Each version is imported by ``PYTHONPATH`` alone,
nothing installed: its ``src/`` folder, or, for a commit from before the ``src/`` layout, a temporary
folder ``mrnet/`` of links to the commit's package folders (read from its ``pyproject.toml``). Each
measurement is a fresh process that first checks which ``mrnet`` it imported.

The sides run in turn, A B B A A B ..., so a machine that gets busier slows both alike and neither
side always runs first, each with its own benchmark cache (each version writes its own loader store). Figures, per process:

- ``loader``: ``benchmarks.loader`` (random 6 s crops through ``FeatureStore.read``, 13 layers and one
  layer, best pass of the profile's passes), and the same crops from a NumPy memmap, which no version
  of mrnet touches: the machine's own drift, a control;
- ``write``: ``write_track`` per 10 s WavLM-base track into the page cache (``benchmarks.write``, best
  of 5 rounds), on features made once for both sides.

Each figure is given in wall time and in the process's CPU time: on a machine shared with other jobs,
wall time also counts the time a process waited for a core, CPU time mostly not.

Prints, per figure, each side's median and range over the pairs, the after/before ratio of the medians
and the per-pair ratios; saves everything to ``benchmarks/results/history/ab-<before>-<after>.json``.
A change is "not measurable" when the ratio of medians is within the noise the memmap control and the
per-pair ratios show, with per-pair ratios on both sides of 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from benchmarks import common

HERE = "."


def _label(side: str) -> str:
    """A short name for a side: the commit, or this checkout's HEAD (``+`` when it has changes)."""
    rev = "HEAD" if side == HERE else side
    head = subprocess.run(
        ["git", "-C", str(common.REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    if side != HERE:
        return head
    dirty = subprocess.run(
        ["git", "-C", str(common.REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return head + ("+" if dirty else "")


def importable(side: str, root: Path) -> Path:
    """The folder to put on ``PYTHONPATH`` so that ``import mrnet`` is ``side``'s code."""
    if side == HERE:
        return common.REPO / "src"
    tree = root / f"tree-{side}"
    subprocess.run(["git", "-C", str(common.REPO), "worktree", "add", "-q", "--detach", str(tree), side], check=True)
    return tree / "src" if (tree / "src" / "mrnet").is_dir() else farm(tree, root / f"farm-{side}")


def farm(tree: Path, folder: Path) -> Path:
    """``folder/mrnet/<package>`` links to the package folders of ``tree``, as its ``pyproject.toml``
    maps them (``package-dir``, the layout before ``src/``): ``folder`` on ``PYTHONPATH`` imports them."""
    setup = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, source in setup["package-dir"].items():  # {"mrnet.store": "store", ...}
        link = folder / Path(*package.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(tree / source, target_is_directory=True)
    return folder


def child(args: argparse.Namespace) -> None:
    """One measurement process: check which mrnet this is, run the asked figures, write them as JSON."""
    import mrnet.store

    expected = Path(args.expect)
    if not Path(mrnet.store.__file__).is_relative_to(expected):
        raise SystemExit(f"imported {mrnet.store.__file__}, not the mrnet under {expected}: check PYTHONPATH")
    import numpy as np

    from benchmarks import loader, write

    out: dict = {}
    ctx = common.Context(common.pick_profile("auto", quick=args.quick), Path(args.work))
    if "loader" in args.only:
        result = loader.run(ctx)
        for layers in (13, 1):
            block = result[f"layers_{layers}"]
            out[f"loader {layers}L store crops/s"] = block["crops_per_s"]["store"]
            out[f"loader {layers}L memmap crops/s (control)"] = block["crops_per_s"]["memmap"]
            out[f"loader {layers}L store/memmap"] = block["efficiency"]["store"]
            cpu = block["cpu_crops_per_s"]
            out[f"loader {layers}L store crops/CPU s"] = cpu["store"]
            out[f"loader {layers}L memmap crops/CPU s (control)"] = cpu["memmap"]
            out[f"loader {layers}L store/memmap, CPU time"] = cpu["store"] / cpu["memmap"]
    if "write" in args.only:
        feats = [np.load(p) for p in args.features]
        folder = Path(args.work) / "write"
        folder.mkdir(parents=True, exist_ok=True)
        timing = write.write_track_timing(folder, feats, repeat=5)
        out["write_track ms per track"] = timing["ms_per_track"]
        out["write_track CPU ms per track"] = timing["cpu_ms_per_track"]
    Path(args.out).write_text(json.dumps(out))


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Per figure: each side's median and range, the after/before ratio of medians and the per-pair ratios."""
    summary = {}
    for key in runs["after"][0]:
        before = [r[key] for r in runs["before"]]
        after = [r[key] for r in runs["after"]]
        pairs = [a / b for a, b in zip(after, before)]
        summary[key] = {
            "before": _spread(before),
            "after": _spread(after),
            "after/before": statistics.median(after) / statistics.median(before),
            "pairs": _spread(pairs),
        }
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default=HERE)
    parser.add_argument("--only", default="loader,write", help="loader, write, or both (comma-separated)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the quick profile's loader sizes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--expect", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--features", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if args.child:
        child(args)
        return
    labels = {"before": _label(args.before), "after": _label(args.after)}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="mrnet-ab-") as tmp:
        root = Path(tmp)
        try:
            paths = {"before": importable(args.before, root), "after": importable(args.after, root)}
            features: list[str] = []
            if "write" in args.only:  # one set of features for both sides, made by this checkout
                from benchmarks import write

                shared = common.Context(common.pick_profile("auto", quick=args.quick), root / "work-shared")
                features = [str(p) for p in write.features(shared)]
            for i in range(args.pairs):
                for name in ("before", "after") if i % 2 == 0 else ("after", "before"):  # A B B A: no side always first
                    out = root / f"{name}-{i}.json"
                    env = {
                        **os.environ,
                        "PYTHONPATH": os.pathsep.join([str(paths[name]), str(common.REPO)]),
                        "MRNET_BENCH_CACHE": str(root / f"cache-{name}"),
                    }
                    command = [sys.executable, "-m", "benchmarks.ab", "x", "--child", "--only", ",".join(args.only)]
                    command += ["--expect", str(paths[name]), "--out", str(out), "--work", str(root / f"work-{name}")]
                    command += ["--quick"] * args.quick + ["--features", *features]
                    subprocess.run(command, cwd=common.REPO, env=env, check=True, stdout=subprocess.DEVNULL)
                    runs[name].append(json.loads(out.read_text()))
                    common.log(f"pair {i + 1} {name} ({labels[name]}): {runs[name][-1]}")
        finally:
            for tree in root.glob("tree-*"):
                subprocess.run(["git", "-C", str(common.REPO), "worktree", "remove", "--force", str(tree)], check=False)
    summary = summarise(runs)
    for key, s in summary.items():
        b, a, p = s["before"], s["after"], s["pairs"]
        print(
            f"{key:36s} before {b['median']:9.2f} [{b['min']:.2f}-{b['max']:.2f}]  after {a['median']:9.2f} "
            f"[{a['min']:.2f}-{a['max']:.2f}]  after/before {s['after/before']:.3f}  per pair {p['median']:.3f} "
            f"[{p['min']:.2f}-{p['max']:.2f}]"
        )
    record = {
        "before": labels["before"],
        "after": labels["after"],
        "only": args.only,
        "pairs": args.pairs,
        "machine": common.machine(Path(tempfile.gettempdir())),
        "load_average_after": common.load_average(),
        "date": common.now_utc(),
        "runs": runs,
        "summary": summary,
    }
    path = common.RESULTS / "history" / f"ab-{labels['before']}-{labels['after'].rstrip('+')}.json"
    path.write_text(json.dumps(record, indent=1, default=common.jsonable) + "\n")
    print(f"saved {path.relative_to(common.REPO)}")


if __name__ == "__main__":
    main()
