"""Extraction on several Dask workers, and the unit size that keeps Dask's share small: ``python -m benchmarks.dask_scaling``.

Every run is the real ``mrnet-extract folder --features mel`` (``mrnet.extract.pipeline.run``: the same
``process_unit`` on threads of this process or on the local Dask cluster of ``--workers N``,
``extract/executors.py`` and ``core/cluster.py``) over the growth benchmark's dataset of short tracks
(``benchmarks.growth_data``: 1 s clips), each in a fresh child process into a fresh store.

- **workers**: 1, 2 and 4 worker processes (``--workers``) over :data:`TRACKS` tracks at the default
  unit size: tracks per second once every worker runs (from the first finished unit to the last, so
  the cluster's start is apart; it is reported too).
- **overhead**: the same units on one Dask worker and on threads of this process (no Dask), both with
  two units in flight, interleaved (threads, Dask, threads, Dask...) at unit sizes
  :data:`UNIT_SIZES` over :data:`SWEEP_TRACKS` tracks. Seconds per unit against the unit size is a
  line for each (``overhead``): the intercepts' difference is Dask's fixed cost per unit, the slope
  the time per track. Neither needs more cores than the two here; the unit size that keeps the fixed
  cost under :data:`TARGET` of a unit's time follows from the two.

Results go to ``benchmarks/results/dask/<machine>-<date>.json`` after every run, with the load average
seen (on this shared 2-core machine, 4 workers oversubscribe the cores and other work shares them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks import common
from benchmarks.common import CACHE, log, run_child

TRACKS = 10_000
WORKERS = (1, 2, 4)
UNIT = 16  # mrnet-extract's default --unit-size
SWEEP_TRACKS = 2000
UNIT_SIZES = (4, 16, 64)
TARGET = 0.05
FOLDER = CACHE / "growth"
RESULTS = common.RESULTS / "dask"


def extract_run(dataset: str, out: str, workers: int, unit_size: int) -> dict:
    """``mrnet-extract folder --root DATASET --features mel --workers W --unit-size U`` (a child): when each unit finished."""
    began = time.perf_counter()
    from mrnet.extract.config import ExtractConfig
    from mrnet.extract.pipeline import run

    start: list[float] = []
    units: list[tuple[float, int, float]] = []  # (finished at, tracks, the unit function's own seconds)
    summary = run(
        ExtractConfig(
            dataset="folder",
            root=Path(dataset),
            out=out,
            features="mel",
            workers=workers,
            unit_size=unit_size,
            manifests_dir=Path(out).with_suffix(".manifests"),
        ),
        on_start=lambda done, todo: start.append(time.perf_counter()),
        on_unit=lambda r: units.append((time.perf_counter(), len(r.rows), r.seconds)),
    )
    return {"seconds": time.perf_counter() - began, "tracks": summary.tracks.height, **steady(start[0], units)}


def steady(start: float, units: list[tuple[float, int, float]]) -> dict:
    """From the first finished unit to the last: seconds per unit and tracks per second (the start apart).

    >>> r = steady(0.0, [(5.0, 10, 1.0), (6.0, 10, 1.0), (7.0, 10, 1.0)])
    >>> r["unit_wall_s"], r["tracks_per_s"], r["first_unit_s"]
    (1.0, 10.0, 5.0)
    """
    times = sorted(t for t, _, _ in units)
    after = sorted(units)[1:]
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {
        "units": len(units),
        "first_unit_s": times[0] - start,
        "unit_wall_s": span / max(1, len(after)),
        "tracks_per_s": sum(n for _, n, _ in after) / span if span else float("nan"),
        "unit_function_s": sum(s for _, _, s in units) / len(units),
    }


def overhead(sweep: dict) -> dict:
    """Seconds per unit against the unit size, a line for each executor (``scipy.stats.linregress`` over every run):
    its slope is the time per track, its intercept the fixed time per unit. Dask's overhead per unit is its
    intercept less the threads' (what Dask adds to every unit whatever its size); its slope less theirs is
    what a track costs more in a worker process. The unit size at which the fixed overhead is :data:`TARGET` of
    a unit's time on a worker follows.

    >>> o = overhead({"4": {"threads": [{"unit_wall_s": 0.4}], "dask": [{"unit_wall_s": 0.6}]},
    ...               "16": {"threads": [{"unit_wall_s": 1.6}], "dask": [{"unit_wall_s": 1.8}]}})
    >>> round(o["per_unit_s"], 3), round(o["per_track_s"], 3), o["unit_size_for_target"]
    (0.2, 0.1, 39)
    """
    from scipy.stats import linregress

    rows, points = [], {"threads": ([], []), "dask": ([], [])}
    for size, runs in sorted(sweep.items(), key=lambda kv: int(kv[0])):
        for kind in points:
            for r in runs.get(kind, []):
                points[kind][0].append(int(size))
                points[kind][1].append(r["unit_wall_s"])
        if runs.get("threads") and runs.get("dask"):
            t = sum(r["unit_wall_s"] for r in runs["threads"]) / len(runs["threads"])
            d = sum(r["unit_wall_s"] for r in runs["dask"]) / len(runs["dask"])
            rows.append(
                {"unit_size": int(size), "threads_s": t, "dask_s": d, "overhead_s": d - t, "share": (d - t) / d}
            )
    if any(len(set(x)) < 2 for x, _ in points.values()):
        return {"rows": rows}
    threads, dask = (linregress(*points[k]) for k in ("threads", "dask"))
    per_unit = max(0.0, float(dask.intercept - threads.intercept))
    per_track = float(dask.slope)
    # per_unit / (per_unit + U * per_track) < TARGET  <=>  U > per_unit * (1 - TARGET) / (TARGET * per_track)
    need = per_unit * (1 - TARGET) / (TARGET * per_track) if per_track > 0 else None  # a slope of noise: no answer
    return {
        "rows": rows,
        "per_unit_s": per_unit,
        "per_track_s": per_track,
        "threads_per_track_s": float(threads.slope),
        "threads_per_unit_s": float(threads.intercept),
        "unit_size_for_target": None if need is None else int(round(need, 9)) + 1,  # smallest with a share < TARGET
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dask_scaling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=TRACKS, help="tracks of the worker runs [%(default)s]")
    ap.add_argument("--workers", default=",".join(map(str, WORKERS)), help="worker counts [%(default)s]")
    ap.add_argument("--sweep-tracks", type=int, default=SWEEP_TRACKS, help="tracks of the overhead runs [%(default)s]")
    ap.add_argument("--unit-sizes", default=",".join(map(str, UNIT_SIZES)), help="unit sizes swept [%(default)s]")
    ap.add_argument("--repeats", type=int, default=1, help="threads/Dask pairs per unit size [%(default)s]")
    ap.add_argument("--work", default=None, help=f"where datasets and stores are built [{FOLDER}]")
    ap.add_argument("--results", default=None, help="result file [benchmarks/results/dask/<machine>-<date>.json]")
    args = ap.parse_args(argv)
    from benchmarks.growth import LoadWatch
    from benchmarks.growth_data import folder_dataset

    work = Path(args.work) if args.work else FOLDER
    info = common.machine(work)
    path = Path(args.results) if args.results else RESULTS / f"{common.machine_slug(info, 'cpu')}-{date.today()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "machine": info,
        "command": " ".join(["python -m benchmarks.dask_scaling", *(argv if argv is not None else sys.argv[1:])]),
        "started": common.now_utc(),
        "tracks": args.tracks,
        "unit": UNIT,
        "workers": {},
        "sweep_tracks": args.sweep_tracks,
        "sweep": {},
    }
    scratch = work / "dask-stores"

    def once(dataset: Path, workers: int, unit: int) -> dict:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            return run_child(
                "benchmarks.dask_scaling:extract_run",
                {"dataset": str(dataset), "out": str(scratch / "s.zarr"), "workers": workers, "unit_size": unit},
                timeout=3600,
            )
        except Exception as err:  # noqa: BLE001 - recorded, the other runs go on
            return {"error": f"{type(err).__name__}: {err}"[-2000:]}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    with LoadWatch() as load:

        def save() -> None:
            res["load"] = load.summary()
            path.write_text(json.dumps(res, indent=1, default=common.jsonable))

        sweep_data = folder_dataset(work, args.sweep_tracks)
        for unit in (int(u) for u in args.unit_sizes.split(",")):
            runs = res["sweep"].setdefault(str(unit), {"threads": [], "dask": []})
            for _ in range(args.repeats):
                for kind, workers in (("threads", 0), ("dask", 1)):
                    r = once(sweep_data, workers, unit)
                    runs[kind].append(r)
                    log(f"dask: unit {unit}, {kind}: {r.get('unit_wall_s', float('nan')):.3f} s per unit")
                    save()
        res["overhead"] = overhead(
            {k: {s: [r for r in v if "error" not in r] for s, v in runs.items()} for k, runs in res["sweep"].items()}
        )
        data = folder_dataset(work, args.tracks)
        for workers in (int(w) for w in args.workers.split(",")):
            r = res["workers"][str(workers)] = once(data, workers, UNIT)
            log(f"dask: {workers} worker(s): {r.get('tracks_per_s', float('nan')):.1f} tracks/s")
            save()
    res["finished"] = common.now_utc()
    save()
    log(f"dask: results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
