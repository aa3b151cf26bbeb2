"""The page's extraction-on-several-workers section, from the newest result of ``python -m benchmarks.dask_scaling``."""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks.common import newest_result
from benchmarks.dask_scaling import RESULTS, TARGET, overhead
from benchmarks.growth import CONTENDED
from benchmarks.tables import f, shown, table

FMA_LARGE = 106_574
FMA_SECONDS = 30.0  # an FMA-large clip's length, against the benchmark's 1 s tracks


def latest(folder: Path = RESULTS) -> tuple[Path, dict] | None:
    return newest_result(
        folder, lambda path, data: (data.get("started", ""),) if data.get("workers") or data.get("sweep") else None
    )


def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if "error" not in r and not math.isnan(r.get("unit_wall_s", float("nan")))]


def section(page, pick: tuple[Path, dict] | None) -> str:
    if pick is None:
        return page.fill("dask-none")
    path, res = pick
    rows = []
    one = None
    for w, r in sorted(res.get("workers", {}).items(), key=lambda kv: int(kv[0])):
        if "error" in r:
            rows.append([w, "failed", "–", "–", "–"])
            continue
        one = one or (r["tracks_per_s"] if w == "1" else None)
        rows.append(
            [
                w,
                f(r["tracks_per_s"], 1),
                f(r["tracks_per_s"] / one, 2) if one else "–",
                f(r["first_unit_s"], 1),
                f(r["unit_function_s"], 3),
            ]
        )
    o = overhead({size: {k: _ok(v) for k, v in runs.items()} for size, runs in res.get("sweep", {}).items()})
    sweep = [
        [
            str(r["unit_size"]),
            f(r["threads_s"], 3),
            f(r["dask_s"], 3),
            f(r["overhead_s"] * 1e3, 0),
            f(100 * r["share"], 0) + " %",
        ]
        for r in o.get("rows", [])
    ]
    per_unit, per_track = o.get("per_unit_s"), o.get("per_track_s")
    need = o.get("unit_size_for_target")
    fma_track = per_track * FMA_SECONDS if per_track and per_track > 0 else None  # a slope of noise: no answer
    fma_need = (
        max(1, math.ceil(per_unit * (1 - TARGET) / (TARGET * fma_track)))
        if per_unit is not None and fma_track
        else None
    )
    load = res.get("load", {})
    # its own 4 workers (and the client) keep a 2-core machine's load near 4 at times: above that, other work ran too
    own = max((int(w) for w in res.get("workers", {})), default=0)
    contended = (load.get("mean") or 0) > CONTENDED + own
    rate = {w: r.get("tracks_per_s") for w, r in res.get("workers", {}).items() if "error" not in r}
    ratio = {w: f(rate[w] / rate["1"], 2) if rate.get(w) and rate.get("1") else "–" for w in ("2", "4")}
    note = page.inline(
        "dask-contended" if contended else "dask-quiet",
        cores=res.get("machine", {}).get("usable_cpus", "?"),
        mean=f(load.get("mean")),
        max=f(load.get("max")),
        two=ratio["2"],
        four=ratio["4"],
    )
    return page.fill(
        "dask",
        machine_note=note,
        caveat=(
            "These are wall-clock seconds on a contended machine: read them as an order of magnitude, and measure "
            "again on the cluster itself with the same command."
            if contended
            else "Measure again on the cluster itself with the same command: its tracks, features and disks set "
            "the time per track."
        ),
        command=res.get("command", "python -m benchmarks.dask_scaling"),
        file=shown(path),
        when=res.get("started", "?"),
        cores=res.get("machine", {}).get("usable_cpus", "?"),
        mean=f(load.get("mean")),
        max=f(load.get("max")),
        tracks=f"{res.get('tracks', 0):,}",
        unit=res.get("unit", 16),
        workers_table=table(
            ["workers", "tracks/s", "× 1 worker", "cluster start to first unit, s", "unit function, s per unit"], rows
        )
        if rows
        else "_Not measured._",
        sweep_tracks=f"{res.get('sweep_tracks', 0):,}",
        sweep_table=table(
            ["unit size", "threads, s per unit", "1 Dask worker, s per unit", "difference, ms per unit", "share"],
            sweep,
        )
        if sweep
        else "_Not measured._",
        per_unit_ms=f(per_unit * 1e3, 0) if per_unit is not None else "–",
        per_track_ms=f(per_track * 1e3, 1) if per_track else "–",
        threads_track_ms=f(o["threads_per_track_s"] * 1e3, 1) if "threads_per_track_s" in o else "–",
        target=f"{TARGET * 100:.0f} %",
        need=need if need else "–",
        fma_track_ms=f(fma_track * 1e3, 0) if fma_track else "–",
        fma_need=fma_need or "–",
        fma_advice="the default of 16 is enough"
        if fma_need and fma_need <= 16
        else f"use `--unit-size {fma_need}`"
        if fma_need
        else "–",
        fma_units=f"{math.ceil(FMA_LARGE / max(16, fma_need or 16)):,}",
    )
