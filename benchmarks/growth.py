"""How every whole-store operation grows with the track count, up to FMA-large: ``python -m benchmarks.growth``.

Three parts, each its own list of measurements (``--parts``, all by default):

- ``stores``: for each of ``--sizes`` (1,000, 10,000 and FMA-large's 106,574 tracks by default) a folder
  dataset and an FMA layout of that many 1 s tracks, the Mel store ``mrnet-extract`` makes of the
  folder dataset (``benchmarks.growth_data``), then every whole-store operation a user meets, each in
  a fresh child process timed with its peak memory (``benchmarks.growth_ops``): the dataset scan
  (folder, FMA with an N-row ``tracks.csv``), ``mrnet-extract --dry-run``, the resume check of the
  finished store (``mrnet-extract`` run again over it), ``mrnet-store info``, ``ls``, ``verify``,
  ``stats``, ``cp``, the resume of an interrupted ``cp`` (planned against a copy that has every track and
  no manifest or root), ``mrnet-train`` from its start to its first training batch, one epoch of
  the training loader, and ``mrnet-predict RUN --store STORE --split test`` (a run of one epoch on the
  smallest store, trained once and untimed, predicting each size's test split).
- ``manifest``: split and fold assignment, label tables and statistics on manifests of up to a million
  tracks (``--manifest-sizes``; ``benchmarks.growth_manifest``).
- ``remote``: training, ``verify`` and ``cp`` from the local S3 server (moto) behind a proxy that adds 20 ms to
  every request, and from the server directly, against the same store on local disk (``benchmarks.remote``).

Each series gets its growth exponents (``benchmarks.growth_fit``: the log-log slope over all sizes and
between the two largest) and log-log plots of time and memory. Results go to
``benchmarks/results/growth/<machine>-<date>[-<largest size>].json`` after every measurement (a run
killed part-way keeps what it measured), with the load average seen while it ran: above
:data:`CONTENDED` the figures came from a shared machine and the page says so. Then docs/performance.md
is regenerated (``--no-doc`` leaves it). ``--sizes 200,400`` and ``--manifest-sizes 1000,4000``
make a run of a minute or two that checks the machinery (tests/benchmarks/test_growth.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
import traceback
from datetime import date
from pathlib import Path

from benchmarks import common
from benchmarks.common import CACHE, log, run_child
from benchmarks.growth_fit import exponents

SIZES = (1000, 10000, 106574)  # FMA-large's track count at the top
MANIFEST_SIZES = (1000, 10000, 100000, 1000000)
PARTS = ("stores", "manifest", "remote")
FOLDER = CACHE / "growth"
RESULTS = common.RESULTS / "growth"
#: Manifest operations run on one Polars thread: on a shared machine a multi-threaded pass over a million rows waits for
#: cores that 100,000 rows (done on one thread) never ask for, which reads as growth the work does not have.
MANIFEST_ENV = {"POLARS_MAX_THREADS": "1"}
CONTENDED = 2.0  # mean load average (1 min) on this 2-core machine above which timings were shared with other work (the
# benchmark's own processes keep it near 2 at times: a momentary peak above it is the benchmark itself)
STORE_OPS = (
    "scan-folder",
    "scan-fma",
    "dry-run",
    "extract",
    "resume-check",
    "info",
    "ls",
    "verify",
    "stats",
    "cp",
    "cp-resume",
    "first-batch",
    "loader-epoch",
    "predict",
)
NOT_MEASURED: dict[str, str] = {}


class LoadWatch:
    """The 1-minute load average, sampled every few seconds while a run goes on."""

    def __init__(self, every: float = 5.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append(common.load_average()[0])
            self._stop.wait(every)

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [common.load_average()[0]]
        return {
            "mean": round(sum(s) / len(s), 2),
            "max": round(max(s), 2),
            "samples": len(s),
            "contended": sum(s) / len(s) > CONTENDED,
        }


# --- the stores part ----------------------------------------------------------------------------
def store_commands(work: Path, n: int) -> dict[str, tuple[str, dict] | None]:
    """Each operation of :data:`STORE_OPS` at size ``n``: ``(child target, its arguments)``."""
    from benchmarks.growth_data import fma_dataset, folder_dataset

    folder, fma = folder_dataset(work, n), fma_dataset(work, n)
    place = work / f"stores-{n}"
    store, copy, manifests = place / "folder.zarr", work / f"copy-{n}.zarr", work / f"manifests-{n}"
    predictions = work / f"predictions-{n}.parquet"
    extract = ["folder", "--root", str(folder), "--features", "mel", "--manifests-dir", str(manifests)]
    return {
        "scan-folder": ("benchmarks.growth_ops:scan", {"dataset": "folder", "root": str(folder)}),
        "scan-fma": ("benchmarks.growth_ops:scan", {"dataset": "fma_large", "root": str(fma)}),
        "dry-run": (
            "benchmarks.growth_ops:extract_cli",
            {"argv": [*extract, "--out", str(work / f"never-{n}.zarr"), "--dry-run"]},
        ),
        "extract": (
            "benchmarks.growth_data:extract_store",
            {"dataset": str(folder), "out": str(store), "manifests": str(manifests)},
        ),
        "resume-check": ("benchmarks.growth_ops:extract_cli", {"argv": [*extract, "--out", str(store)]}),
        "info": ("benchmarks.growth_ops:store_cli", {"argv": ["info", str(store)]}),
        "ls": ("benchmarks.growth_ops:store_cli", {"argv": ["ls", str(place)]}),
        "verify": ("benchmarks.growth_ops:store_cli", {"argv": ["verify", str(store)]}),
        "stats": ("benchmarks.growth_ops:store_cli", {"argv": ["stats", str(store)]}),
        "cp": ("benchmarks.growth_ops:store_cli", {"argv": ["cp", str(store), str(copy)]}),
        "cp-resume": ("benchmarks.growth_ops:store_cli", {"argv": ["cp", str(store), str(copy)]}),
        "first-batch": ("benchmarks.growth_ops:first_batch", {"store": str(store), "out": str(work / f"run-{n}")}),
        "loader-epoch": ("benchmarks.growth_ops:loader_epoch", {"store": str(store)}),
        "predict": (
            "benchmarks.growth_ops:predict_cli",
            {
                "argv": [
                    str(work / "predicting-run"),
                    "--store",
                    str(store),
                    "--split",
                    "test",
                    "--out",
                    str(predictions),
                ]
            },
        ),
    }


def _predicting_run(work: Path, store: Path) -> Path:
    """The run ``predict`` uses at every size: one epoch of the tiny preset, trained once (in a child, untimed) on the
    first store it is asked for, the smallest of a run (every size's store holds the same features and genres, so
    one run predicts them all)."""
    run = work / "predicting-run"
    if not (run / "checkpoints" / "best.pt").exists():
        run_child("benchmarks.growth_ops:predicting_run", {"store": str(store), "out": str(run)}, timeout=3600)
    return run


def _before(op: str, work: Path, n: int) -> None:
    """What an operation needs done first, untimed: a fresh copy destination, an interrupted copy, no run folder."""
    if op == "cp":
        shutil.rmtree(work / f"copy-{n}.zarr", ignore_errors=True)
    elif op == "cp-resume":
        from benchmarks.growth_ops import interrupt_copy

        interrupt_copy(str(work / f"copy-{n}.zarr"))
    elif op == "first-batch":
        shutil.rmtree(work / f"run-{n}", ignore_errors=True)
    elif op == "predict":
        (work / f"predictions-{n}.parquet").unlink(missing_ok=True)
        _predicting_run(work, work / f"stores-{n}" / "folder.zarr")
    elif op == "extract":
        shutil.rmtree(work / f"stores-{n}", ignore_errors=True)  # a fresh extraction, not a resumed one


def measure(target: str, args: dict, env: dict | None = None) -> dict:
    """One child: its own seconds, its peak memory (VmHWM, and the sampled peak of its process tree)."""
    r = run_child(target, args, timeout=3600, env=env)
    cpu = r.pop("cpu_s", None)  # the operation's own, where it measures it; else the whole child's (imports included)
    cpu = cpu if cpu is not None else r["child"]["cpu_user_s"] + r["child"]["cpu_sys_s"]
    return {
        "seconds": round(r.pop("seconds"), 4),
        "cpu_s": round(cpu, 4),
        "maxrss_mb": r["memory"]["maxrss_mb"],
        "peak_rss_mb": r["memory"]["peak_rss_mb"],
        "process_wall_s": r["process_wall_s"],
        **{k: v for k, v in r.items() if k not in ("memory", "child", "process_wall_s")},
    }


def _record(part: dict, op: str, n: int, result: dict) -> None:
    """Put one measurement in its series, replacing an earlier one of the same size (``--ops`` reruns)."""
    s = part["ops"].setdefault(op, {"n": [], "runs": []})
    if n in s["n"]:
        s["runs"][s["n"].index(n)] = result
    else:
        s["n"].append(n)
        s["runs"].append(result)
        order = sorted(range(len(s["n"])), key=s["n"].__getitem__)
        s["n"], s["runs"] = [s["n"][i] for i in order], [s["runs"][i] for i in order]


def run_stores(work: Path, sizes: list[int], save, ops: list[str] | None = None, part: dict | None = None) -> dict:
    """Every operation of :data:`STORE_OPS` (or only ``ops``) at each size, recorded into ``part`` as it goes."""
    part = part if part is not None else {}
    part.setdefault("sizes", [])
    part.setdefault("ops", {op: {"n": [], "runs": []} for op in STORE_OPS if op not in NOT_MEASURED})
    part["not_measured"] = dict(NOT_MEASURED)
    part["sizes"] = sorted(set(part["sizes"]) | set(sizes))
    for n in sizes:
        log(f"growth: building the datasets of {n:,} tracks")
        commands = store_commands(work, n)
        for op in STORE_OPS:
            if commands[op] is None or (ops and op not in ops):
                continue
            _before(op, work, n)
            try:
                result = measure(*commands[op])
            except Exception as err:  # noqa: BLE001 - a failed operation is recorded and the run goes on
                result = {"error": f"{type(err).__name__}: {err}"[-3000:]}
                log(f"  {op} at {n:,} FAILED: {result['error'][-400:]}")
            else:
                log(f"  {op} at {n:,}: {result['seconds']:.2f} s, {result['maxrss_mb']:.0f} MB")
            _record(part, op, n, result)
            save()
        shutil.rmtree(work / f"copy-{n}.zarr", ignore_errors=True)  # the copy doubles the disk a size takes
    return part


def run_manifest(sizes: list[int], save, ops: list[str] | None = None, part: dict | None = None) -> dict:
    from benchmarks.growth_manifest import OPERATIONS

    part = part if part is not None else {}
    part.setdefault("sizes", [])
    part.setdefault("ops", {op: {"n": [], "runs": []} for op in OPERATIONS})
    part["sizes"] = sorted(set(part["sizes"]) | set(sizes))
    for n in sizes:
        for op in OPERATIONS:
            if ops and op not in ops:
                continue
            try:
                result = measure("benchmarks.growth_manifest:operation", {"name": op, "n": n}, env=MANIFEST_ENV)
            except Exception as err:  # noqa: BLE001
                result = {"error": f"{type(err).__name__}: {err}"[-3000:]}
            log(
                f"  manifest {op} at {n:,}: "
                + (
                    f"{result['seconds']:.3f} s, {result['op_peak_mb']:.0f} MB"
                    if "error" not in result
                    else "FAILED " + result["error"][-300:]
                )
            )
            _record(part, op, n, result)
            save()
    return part


def series(part: dict, memory: str = "maxrss_mb") -> dict[str, dict]:
    """Per operation, the sizes it ran at without error, its seconds and memory, and its growth exponents."""
    out = {}
    for op, s in part.get("ops", {}).items():
        ok = [(n, r) for n, r in zip(s["n"], s["runs"]) if "error" not in r]
        if not ok:
            continue
        n = [a for a, _ in ok]
        seconds = [r["seconds"] for _, r in ok]
        mem = [r[memory] for _, r in ok]
        cpu = [r.get("cpu_s") for _, r in ok]
        out[op] = {
            "n": n,
            "seconds": seconds,
            memory: mem,
            "time": exponents(n, seconds),
            "memory": exponents(n, mem, floor=1.0),
            "cpu": exponents(n, cpu) if all(c is not None for c in cpu) else exponents([], []),
        }
    return out


# --- the command --------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.growth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="store sizes in tracks [%(default)s]")
    ap.add_argument(
        "--manifest-sizes", default=",".join(map(str, MANIFEST_SIZES)), help="manifest sizes in rows [%(default)s]"
    )
    ap.add_argument(
        "--remote-tracks", type=int, default=1000, help="tracks of the store the remote part reads [%(default)s]"
    )
    ap.add_argument(
        "--remote-rounds",
        type=int,
        default=3,
        help="rounds of each remote measurement, their median kept [%(default)s]",
    )
    ap.add_argument("--parts", default=",".join(PARTS), help=f"which parts to run [{','.join(PARTS)}]")
    ap.add_argument(
        "--remote-ops",
        default="train,verify,cp-download,cp-upload",
        help="which measurements of the remote part [%(default)s]; merge a partial one with --into R --merge FILE",
    )
    ap.add_argument("--work", default=None, help=f"where datasets and stores are built [{FOLDER}]")
    ap.add_argument("--results", default=None, help=f"folder for the result file [{RESULTS.relative_to(common.REPO)}]")
    ap.add_argument(
        "--ops",
        default="",
        help="only these operations (comma-separated), measured again into this run's "
        "existing result file: what a fix changed, after the fix",
    )
    ap.add_argument(
        "--into", default=None, metavar="FILE", help="measure into this earlier result file (with --ops: again)"
    )
    ap.add_argument(
        "--merge",
        default=None,
        metavar="FILE",
        help="with --into: add FILE's store and manifest measurements (and its remote part, whole) to it, measuring "
        "nothing (a size or part measured by a separate run)",
    )
    ap.add_argument("--no-doc", action="store_true", help="leave docs/performance.md alone")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    sizes, manifest_sizes = _ints(args.sizes), _ints(args.manifest_sizes)
    work = Path(args.work) if args.work else FOLDER
    work.mkdir(parents=True, exist_ok=True)
    folder = Path(args.results) if args.results else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    info = common.machine(work)
    slug = common.machine_slug(info, "cpu")
    full = tuple(sizes) == SIZES and tuple(manifest_sizes) == MANIFEST_SIZES
    path = folder / f"{slug}-{date.today().isoformat()}{'' if full else f'-{max(sizes)}'}.json"
    command = " ".join(["python -m benchmarks.growth", *(argv if argv is not None else sys.argv[1:])])
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    results = {
        "machine": info,
        "machine_slug": slug,
        "git": _git(),
        "date": date.today().isoformat(),
        "command": command,
        "started": common.now_utc(),
        "full": full,
        "parts": {},
    }
    if args.into:
        path = Path(args.into)
        from benchmarks.growth_manifest import OPERATIONS

        ops = ops or [*(STORE_OPS if "stores" in parts else ()), *(OPERATIONS if "manifest" in parts else ())]
    if ops:
        if not path.exists():
            ap.error(f"--ops measures again into an earlier run's result; there is no {path}")
        earlier = json.loads(path.read_text())
        if args.merge:
            return _merge(path, earlier, Path(args.merge), command, args.no_doc)
        reruns = earlier.setdefault("reruns", [])
        reruns.append(
            {
                "command": command,
                "ops": ops,
                "started": common.now_utc(),
                "git": results["git"],
                "load_before": common.load_average(),
            }
        )
        results = earlier
    with LoadWatch() as load:

        def save() -> None:
            if ops:
                results["reruns"][-1]["load"] = load.summary()
            else:
                results["load"] = load.summary()
            path.write_text(json.dumps(results, indent=1, default=common.jsonable))

        log(f"growth: parts {', '.join(parts)}, sizes {sizes}, manifests {manifest_sizes} -> {path}")
        for name in parts:
            began = time.perf_counter()
            if ops and name == "remote":
                continue  # the remote part is measured whole
            earlier = results["parts"].get(name) if ops else None
            part = results["parts"][name] = earlier if isinstance(earlier, dict) and "ops" in earlier else {}
            part.pop("error", None)
            try:  # each part fills its dict as it goes: a part that fails keeps what it measured
                if name == "stores":
                    run_stores(work, sizes, save, ops, part)
                elif name == "manifest":
                    run_manifest(manifest_sizes, save, ops, part)
                else:
                    from benchmarks import remote

                    only = tuple(o.strip() for o in args.remote_ops.split(",") if o.strip())
                    remote.run(work, save, tracks=args.remote_tracks, part=part, only=only, rounds=args.remote_rounds)
            except Exception:  # noqa: BLE001 - a failed part is recorded and the others run
                part["error"] = traceback.format_exc()
                log(f"{name} FAILED:\n{part['error']}")
            if not ops:
                results["parts"][name]["seconds"] = round(time.perf_counter() - began, 1)
            save()
    results["finished" if not ops else "rerun_finished"] = common.now_utc()
    save()
    log(f"growth: results in {path} (load average {results['load']['mean']} mean, {results['load']['max']} max)")
    for name in ("stores", "manifest"):
        for op, s in series(results["parts"].get(name, {"ops": {}})).items():
            log(f"  {name} {op}: time exponent {_show(s['time'])}, memory {_show(s['memory'])}")
    if not args.no_doc:
        from benchmarks import report

        log(f"wrote {report.write_doc()}")
    return 0


def _merge(path: Path, into: dict, other_path: Path, command: str, no_doc: bool) -> int:
    """Add every store and manifest measurement of ``other_path`` to the result ``into`` (saved to ``path``)."""
    other = json.loads(other_path.read_text())
    for name in ("stores", "manifest"):
        theirs = other.get("parts", {}).get(name)
        if not theirs or "ops" not in theirs:
            continue
        mine = into["parts"].get(name)
        if not isinstance(mine, dict) or "ops" not in mine:  # not measured here, or a part that failed before measuring
            mine = into["parts"][name] = {"sizes": [], "ops": {}}
        mine["sizes"] = sorted(set(mine.get("sizes", [])) | set(theirs["sizes"]))
        for op, s in theirs["ops"].items():
            for n, r in zip(s["n"], s["runs"]):
                _record(mine, op, n, r)
        if "not_measured" in theirs:
            mine["not_measured"] = theirs["not_measured"]
    measured = {f"remote {k}" for k in _merge_remote(into, other)}
    into.setdefault("reruns", []).append(
        {
            "command": other.get("command"),
            "merged_from": other_path.name,
            "started": other.get("started"),
            "git": other.get("git", {}),
            "load": other.get("load", {}),
            "ops": sorted(
                {op for p in other.get("parts", {}).values() if isinstance(p, dict) for op in p.get("ops", {})}
                | measured
            ),
            "sizes": sorted(
                {n for p in other.get("parts", {}).values() if isinstance(p, dict) for n in p.get("sizes", [])}
            ),
        }
    )
    into["reruns"] += other.get("reruns", [])  # what was measured again or merged into the merged run, too
    path.write_text(json.dumps(into, indent=1, default=common.jsonable))
    log(f"merged {other_path} into {path}")
    if not no_doc:
        from benchmarks import report

        log(f"wrote {report.write_doc()}")
    return 0


def _merge_remote(into: dict, other: dict) -> list[str]:
    """Merge ``other``'s remote part into ``into``'s: what it measured replaces, what it did not stays, each
    measurement keeping the server rate of its own run; the same within the pinned layout. Returns what it
    measured."""
    theirs = other.get("parts", {}).get("remote")
    if not (isinstance(theirs, dict) and "error" not in theirs and "server" in theirs):
        return []
    mine = into["parts"].get("remote")
    mine = mine if isinstance(mine, dict) and "error" not in mine else {}
    measured = _merge_layout(mine, theirs)
    pinned = theirs.get("pinned")
    if isinstance(pinned, dict) and "server" in pinned:
        merged = mine.get("pinned") if isinstance(mine.get("pinned"), dict) else {}
        measured += _merge_layout(merged, pinned)
        pinned = merged
    if pinned is not None:
        mine["pinned"] = pinned
    into["parts"]["remote"] = mine
    return sorted(set(measured))


def _merge_layout(mine: dict, theirs: dict) -> list[str]:
    """One layout's merge (``_merge_remote``): ``mine`` updated in place with what ``theirs`` measured."""
    from benchmarks.remote import MEASURES

    for key in MEASURES:
        if isinstance(mine.get(key), dict) and "server" in mine:  # what stays keeps its own run's server rate
            mine[key].setdefault("server", mine["server"])
        if isinstance(theirs.get(key), dict) and any("rate" in v for v in theirs[key].values() if isinstance(v, dict)):
            theirs[key].setdefault("server", theirs["server"])  # each keeps the server rate of its own run
        else:
            theirs.pop(key, None)  # not measured there (or failed): what the result has stays
    measured = [k for k in MEASURES if k in theirs]
    mine.update({k: v for k, v in theirs.items() if k != "pinned"})
    return measured


def _show(e: dict) -> str:
    return "–" if e["fit"] is None else f"{e['fit']:.2f} over all sizes, {e['top']:.2f} at the top"


def _git() -> dict:
    from benchmarks.run import _git as git

    return git()


if __name__ == "__main__":
    sys.exit(main())
