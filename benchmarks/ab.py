"""``python -m benchmarks.ab BEFORE AFTER [--only loader,write] [--pairs 4]``: did a change slow a figure down?

Checks out two commits into temporary worktrees, each with a light virtual environment that reuses
this one's packages and installs its own ``mrnet``, and runs ``benchmarks.run --only ...`` for each
in turn (A B A B ..., so a busy machine slows both alike), each with its own benchmark cache (the
store formats of two commits may differ). Prints per pair the loader's store/memmap ratio and crop
rate for 13 and 1 layers, and ``write_track``'s milliseconds per track, then the medians and the
after/before ratio of the medians. Saves everything to ``benchmarks/results/history/ab-<before>-<after>.json``.

Figures move by 10-20 % between runs on a shared machine; a change is "not measurable" when the
after/before ratio of medians is within that noise and the per-pair ratios fall on both sides of 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import common


def _worktree(commit: str, root: Path) -> tuple[Path, Path]:
    """A detached worktree of ``commit`` and a venv whose ``python`` imports that worktree's mrnet."""
    tree, venv = root / f"tree-{commit}", root / f"venv-{commit}"
    subprocess.run(["git", "-C", str(common.REPO), "worktree", "add", "-q", "--detach", str(tree), commit], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    base = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").is_dir())
    (site / "mrnet-base.pth").write_text(f"{base}\n")
    pip = [str(venv / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, "setuptools>=68", "wheel"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(tree)], check=True, stdout=subprocess.DEVNULL)
    return tree, venv / "bin" / "python"


def _figures(result: dict) -> dict:
    loader, write = result.get("loader", {}), result.get("write", {})
    out = {}
    for layers in (13, 1):
        block = loader.get(f"layers_{layers}", {})
        if block:
            out[f"loader {layers}L store/memmap"] = block["efficiency"]["store"]
            out[f"loader {layers}L crops/s"] = block["crops_per_s"]["store"]
    if "write_track" in write:
        out["write_track ms"] = write["write_track"].get("ms_per_track", write["write_track"].get("ms"))
    return {k: v for k, v in out.items() if v is not None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--only", default="loader,write")
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mrnet-ab-") as tmp:
        root = Path(tmp)
        sides: dict[str, tuple[Path, Path]] = {}
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        try:
            for name, commit in (("before", args.before), ("after", args.after)):
                sides[name] = _worktree(commit, root)
            for i in range(args.pairs):
                for name, (tree, python) in sides.items():
                    out = root / f"{name}-{i}"
                    env = {**os.environ, "MRNET_BENCH_CACHE": str(root / f"cache-{name}")}
                    subprocess.run(
                        [
                            str(python),
                            "-m",
                            "benchmarks.run",
                            "--only",
                            args.only,
                            "--no-doc",
                            "--results",
                            str(out),
                            "--work",
                            str(root / f"work-{name}"),
                        ],
                        cwd=tree,
                        env=env,
                        check=True,
                        stdout=subprocess.DEVNULL,
                    )
                    result = json.loads(next(out.glob("*.json")).read_text())
                    runs[name].append(_figures(result.get("figures", result)))
                    common.log(f"pair {i + 1} {name}: {runs[name][-1]}")
        finally:
            for tree, _ in sides.values():
                subprocess.run(["git", "-C", str(common.REPO), "worktree", "remove", "--force", str(tree)], check=False)
    summary = {}
    for key in runs["after"][0]:
        before = statistics.median(r[key] for r in runs["before"])
        after = statistics.median(r[key] for r in runs["after"])
        summary[key] = {
            "before": before,
            "after": after,
            "after/before": after / before,
            "pairs": [a[key] / b[key] for a, b in zip(runs["after"], runs["before"])],
        }
        print(
            f"{key:28s} before {before:10.3f}  after {after:10.3f}  after/before {after / before:.3f}  "
            f"per pair {', '.join(f'{x:.2f}' for x in summary[key]['pairs'])}"
        )
    record = {
        "before": args.before,
        "after": args.after,
        "only": args.only,
        "machine": common.machine(Path(tempfile.gettempdir())),
        "date": common.now_utc(),
        "runs": runs,
        "summary": summary,
    }
    path = common.RESULTS / "history" / f"ab-{args.before}-{args.after}.json"
    path.write_text(json.dumps(record, indent=1, default=common.jsonable) + "\n")
    print(f"saved {path.relative_to(common.REPO)}")


if __name__ == "__main__":
    main()
