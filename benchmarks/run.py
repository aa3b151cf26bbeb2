"""``python -m benchmarks.run [--quick] [--only NAME ...] [--device auto|cpu|cuda]``: measure, then write the doc.

Runs the figures in order (extraction, batching, write, loader, training, memory, steps, scale), saves every
number to ``benchmarks/results/<machine>-<date>[-quick].json`` after each figure (a partial run keeps
what it measured; ``--only`` updates its figures in the same file, or, when this machine has no
result of today, in its newest result of the same size, so one figure measured later joins the
others on the page; the file's ``runs`` and each figure's ``_run`` say when and on which commit each
was measured), then regenerates ``docs/performance.md`` and its plots from the newest results of each
kind of machine (``benchmarks.report``).

``--quick`` is a smaller run (a few minutes on 2 CPU cores) for checking that everything works; the
doc always prefers full results. Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from datetime import date

from benchmarks import common

FIGURES = ("extraction", "batching", "write", "loader", "training", "memory", "steps", "scale")


#: What the benchmarks write into the checkout: a change there does not make a measurement's code "uncommitted".
WRITTEN = ("benchmarks/results", "docs")


def _git() -> dict:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=common.REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = bool(  # what benchmarks write themselves (results, the pages) does not count
            subprocess.run(
                [
                    "git",
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    ".",
                    *(f":(exclude){p}" for p in WRITTEN),
                ],
                cwd=common.REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
        return {"commit": head, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {}


def _shown(path) -> str:
    return str(path.relative_to(common.REPO)) if path.is_relative_to(common.REPO) else str(path)


def newest_of(folder, slug: str, quick: bool):
    """The newest ``<slug>-<date>[-quick].json`` in ``folder`` (full or quick as asked), or None."""
    import re

    pattern = re.compile(re.escape(slug) + r"-\d{4}-\d{2}-\d{2}" + ("-quick" if quick else "") + "$")
    found = sorted(p for p in folder.glob(f"{slug}-*.json") if pattern.match(p.stem))
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="smaller sizes (minutes): check the machinery, not the numbers"
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these figures (repeat or comma-separate): {', '.join(FIGURES)}",
    )
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when available")
    ap.add_argument("--work", default=None, help=f"scratch folder for stores and runs [default: {common.CACHE}/work]")
    ap.add_argument(
        "--results",
        default=None,
        help=f"folder for the result file [default: {common.RESULTS.relative_to(common.REPO)}]",
    )
    ap.add_argument(
        "--no-doc", action="store_true", help="measure and save results only; leave docs/performance.md alone"
    )
    ap.add_argument(
        "--doc-only", action="store_true", help="regenerate docs/performance.md from saved results; measure nothing"
    )
    args = ap.parse_args(argv)

    from benchmarks import report

    if args.doc_only:
        path = report.write_doc()
        common.log(f"wrote {path}")
        return 0
    only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in only if n not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    selected = [f for f in FIGURES if not only or f in only]
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # children too: the pipeline picks CUDA whenever it sees one
    profile = common.pick_profile(args.device, args.quick)
    work = common.Path(args.work) if args.work else common.CACHE / "work"
    work.mkdir(parents=True, exist_ok=True)
    ctx = common.Context(profile, work)
    info = common.machine(work)
    slug = common.machine_slug(info, profile.device)
    folder = common.Path(args.results) if args.results else common.RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}-{date.today().isoformat()}{'-quick' if args.quick else ''}.json"
    earlier = None if path.exists() or not only else newest_of(folder, slug, args.quick)
    if earlier is not None:
        common.log(f"no result of today on {slug}: --only adds its figures to {_shown(earlier)}")
        path = earlier
    results = json.loads(path.read_text()) if path.exists() else {}
    command = " ".join(
        ["python -m benchmarks.run", *(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))]
    )
    git = _git()
    if earlier is None:  # a file of an earlier day keeps its own date, commit and machine record
        results.update(
            {
                "machine": info,
                "machine_slug": slug,
                "profile": profile.__dict__,
                "device": profile.device,
                "git": git,
                "date": date.today().isoformat(),
            }
        )
    results.setdefault("figures", {})
    runs = results.setdefault("runs", [])  # every invocation that wrote into this file
    runs.append({"command": command, "figures": selected, "started": common.now_utc(), "seconds": None, "git": git})
    common.log(f"{profile.name} on {slug}: {', '.join(selected)} -> {_shown(path)}")
    began = time.perf_counter()
    for name in selected:
        module = __import__(f"benchmarks.{name}", fromlist=["run"])
        load0, t0 = common.load_average(), time.perf_counter()
        try:
            figure = module.run(ctx)
        except Exception:  # noqa: BLE001 - a failed figure is recorded and the run goes on
            figure = {"error": traceback.format_exc()}
            common.log(f"{name} FAILED:\n{figure['error']}")
        figure["_run"] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "load_before": load0,
            "load_after": common.load_average(),
            "when": common.now_utc(),
            "git": git,
        }
        results["figures"][name] = figure
        path.write_text(json.dumps(results, indent=1, default=common.jsonable))
        common.log(f"{name}: {figure['_run']['seconds']:.0f} s")
    runs[-1]["seconds"] = round(time.perf_counter() - began, 1)
    path.write_text(json.dumps(results, indent=1, default=common.jsonable))
    common.log(f"done in {runs[-1]['seconds'] / 60:.1f} min; results in {_shown(path)}")
    if not args.no_doc:
        common.log(f"wrote {report.write_doc()}")
    return 0 if not any("error" in f for f in results["figures"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
