"""The page's scale section, from the newest result of ``python -m benchmarks.growth``.

``latest()`` picks the newest full result in ``benchmarks/results/growth/`` (a smaller run only when no
full one exists); ``section(page, pick, img)`` fills the ``growth*`` blocks of
``benchmarks/performance.md.in`` with its tables and draws its two log-log plots.
"""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks import dask_report
from benchmarks.common import newest_result
from benchmarks.growth import CONTENDED, RESULTS, series
from benchmarks.growth_fit import LINEAR, plot
from benchmarks.tables import f, met, shown, table

LABELS = {
    "scan-folder": "scan, folder dataset",
    "scan-fma": "scan, FMA (N-row tracks.csv)",
    "dry-run": "`mrnet-extract --dry-run`",
    "extract": "`mrnet-extract` (Mel, the store itself)",
    "resume-check": "resume check of the finished store (`mrnet-extract` again)",
    "info": "`mrnet-store info`",
    "ls": "`mrnet-store ls`",
    "verify": "`mrnet-store verify`",
    "stats": "`mrnet-store stats`",
    "cp": "`mrnet-store cp`",
    "cp-resume": "`mrnet-store cp`, resuming an interrupted copy",
    "first-batch": "`mrnet-train` to its first batch",
    "loader-epoch": "one epoch of the training loader",
    "predict": "prediction from a store",
}
FIRST_BATCH_TARGET = 60.0
RATIO_TARGET = 0.8


def latest(folder: Path = RESULTS) -> tuple[Path, dict] | None:
    return newest_result(
        folder, lambda path, data: (bool(data.get("full")), data.get("date", "")) if data.get("parts") else None
    )


def _slope(e: dict) -> str:
    return "–" if e["fit"] is None else f"{e['fit']:.2f} / {e['top']:.2f}"


def _verdict(s: dict) -> str:
    """Linear or better: the CPU time's top slope (the wall time's where CPU was not recorded) and the memory's."""
    work = s["cpu"] if s.get("cpu", {}).get("linear") is not None else s["time"]
    checks = [e["linear"] for e in (work, s["memory"]) if e["linear"] is not None]
    return "–" if not checks else ("yes" if all(checks) else "**no**")


def growth_table(part: dict, labels: dict[str, str], memory: str) -> tuple[str, dict]:
    """Seconds and memory per size, the exponents and the verdict of every operation; and the series."""
    found = series(part, memory)
    sizes = part["sizes"]
    head = [
        "operation",
        *(f"s at {n:,}" for n in sizes),
        *(f"MB at {n:,}" for n in sizes),
        "time exponent (all / top)",
        "CPU time exponent (all / top)",
        "memory exponent (all / top)",
        "linear or better",
    ]
    rows = []
    for op, s in found.items():
        at = dict(zip(s["n"], zip(s["seconds"], s[memory])))
        rows.append(
            [
                labels.get(op, op),
                *(f(at[n][0]) if n in at else "failed" for n in sizes),
                *(f(at[n][1], 0) if n in at else "–" for n in sizes),
                _slope(s["time"]),
                _slope(s.get("cpu", s["time"])) if s.get("cpu", {}).get("fit") is not None else "–",
                _slope(s["memory"]),
                _verdict(s),
            ]
        )
    failed = [
        f"{labels.get(op, op)} at {n:,}: {r['error'].splitlines()[-1][:200]}"
        for op, s in part.get("ops", {}).items()
        for n, r in zip(s["n"], s["runs"])
        if "error" in r
    ]
    text = table(head, rows)
    if failed:
        text += "\n\nFailed: " + "; ".join(failed)
    return text, found


def section(page, pick: tuple[Path, dict] | None, img: Path) -> str:
    if pick is None:
        return page.fill("growth-none")
    path, res = pick
    load = res.get("load", {})
    parts = res["parts"]
    contended = (
        page.fill("growth-contended", mean=f(load.get("mean")), max=f(load.get("max")))
        if (load.get("mean") or 0) > CONTENDED  # judged on the mean: the benchmark's own processes make brief peaks
        else page.fill("growth-quiet", mean=f(load.get("mean")), max=f(load.get("max")))
    )
    return page.fill(
        "growth",
        command=res.get("command", "python -m benchmarks.growth"),
        file=shown(path),
        when=res.get("started", res.get("date")),
        commit=f"{res.get('git', {}).get('commit', '?')}{' + uncommitted changes' if res.get('git', {}).get('dirty') else ''}",
        cpu=res["machine"]["cpu"],
        cores=res["machine"]["usable_cpus"],
        contended=contended,
        linear=f"{LINEAR:.2f}",
        stores=_stores(page, parts.get("stores"), img),
        manifest=_manifest(page, parts.get("manifest"), img),
        remote=_remote(page, parts.get("remote")),
        dask=dask_report.section(page, dask_report.latest()),
        reruns=_reruns(page, res),
        **_before_after(res),
        **_first_batch(parts.get("stores")),
    )


def _first_batch(part: dict | None) -> dict[str, str]:
    """The first batch at the largest size it was measured at: its seconds and the imports' share of them."""
    s = (part or {}).get("ops", {}).get("first-batch", {"n": [], "runs": []})
    runs = [(n, r) for n, r in zip(s["n"], s["runs"]) if "error" not in r]
    if not runs:
        return {"first_batch": "–", "first_imports": "–", "first_top": "–"}
    n, r = max(runs, key=lambda t: t[0])
    return {"first_batch": f(r["seconds"], 1), "first_imports": f(r.get("imports_s"), 1), "first_top": f"{n:,}"}


def _before_after(res: dict) -> dict[str, str]:
    """The recorded measurements from before a fix (``before_fixes``) next to this result's own."""
    before = res.get("before_fixes", {})
    out = {}
    now = {
        op: dict(zip(s["n"], s["seconds"]))
        for name in ("stores", "manifest")
        for op, s in series(res["parts"].get(name, {}), "maxrss_mb" if name == "stores" else "op_peak_mb").items()
    }
    stats = dict(zip(before.get("statistics", {}).get("n", []), before.get("statistics", {}).get("seconds", [])))
    out["stats_before"] = f(stats.get(1000000), 0) if stats.get(1000000) else "–"
    out["stats_ratio"] = f(stats[1000000] / stats[100000], 0) if stats.get(1000000) and stats.get(100000) else "–"
    out["stats_commit"] = before.get("statistics", {}).get("commit", "?")
    out["stats_after"] = f(now.get("statistics", {}).get(1000000), 1)
    info = dict(zip(before.get("info", {}).get("n", []), before.get("info", {}).get("seconds", [])))
    out["info_before"] = f(info.get(10000), 1)
    out["info_commit"] = before.get("info", {}).get("commit", "?")
    out["info_after"] = f(now.get("info", {}).get(10000), 1)
    for op in ("verify", "cp"):  # the key-clash fix, at the largest size
        was = dict(zip(before.get(op, {}).get("n", []), before.get(op, {}).get("seconds", [])))
        top = max(was, default=None)
        after = now.get(op, {}).get(top) if top else None
        out[f"{op}_before"] = f(was.get(top), 0) if top else "–"
        out[f"{op}_saved"] = f(was[top] - after, 0) if top and after else "–"
        out[f"{op}_after"] = f(after, 0) if after else "–"
        out[f"{op}_slope"] = f(math.log(was[top] / was[10000]) / math.log(top / 10000)) if top and 10000 in was else "–"
    out["clash_commit"] = before.get("verify", {}).get("commit", "?")
    return out


def _reruns(page, res: dict) -> str:
    """The operations measured again into this result after a fix (``--ops``), and when."""
    lines = [
        page.inline(
            "growth-merged" if r.get("merged_from") else "growth-rerun",
            ops=", ".join(r["ops"]),
            when=r["started"],
            commit=r.get("git", {}).get("commit", "?")
            + (" + uncommitted changes" if r.get("git", {}).get("dirty") else ""),
            mean=f(r.get("load", {}).get("mean")),
            max=f(r.get("load", {}).get("max")),
            command=r.get("command") or "",
            sizes=", ".join(f"{n:,}" for n in r.get("sizes", [])) or ", ".join(r.get("ops", [])),
        )
        for r in res.get("reruns", [])
    ]
    return "\n".join(f"- {line}" for line in lines)


def _stores(page, part: dict | None, img: Path) -> str:
    if not part or "ops" not in part:
        return page.fill("not-measured") + (f"\n\n```\n{part['error'][-1500:]}\n```" if part else "")
    text, found = growth_table(part, LABELS, "maxrss_mb")
    if "error" in part:
        text += "\n\nThe run stopped with: `" + part["error"].strip().splitlines()[-1][:300] + "`"
    drawn = (
        plot(
            {LABELS[op].replace("`", ""): s for op, s in found.items()},
            img / "perf-growth-stores.png",
            "Whole-store operations",
            memory_key="maxrss_mb",
        )
        if found
        else None
    )
    first = found.get("first-batch")
    top = part["sizes"][-1]
    at_top = dict(zip(first["n"], first["seconds"])).get(top) if first else None
    runs = dict(zip(part["ops"]["first-batch"]["n"], part["ops"]["first-batch"]["runs"])) if first else {}
    missing = "; ".join(f"{LABELS.get(op, op)}: {why}" for op, why in part.get("not_measured", {}).items())
    return page.fill(
        "growth-stores",
        table=text,
        plot=f"![whole-store operations against tracks](img/{drawn})" if drawn else "",
        top=f"{top:,}",
        smallest=f"{part['sizes'][0]:,}",
        first_batch=f(at_top),
        target=f(FIRST_BATCH_TARGET, 0),
        first_met="**met**" if at_top is not None and at_top < FIRST_BATCH_TARGET else "**missed**",
        first_cpu=f(runs.get(top, {}).get("cpu_s"), 1),
        first_cpu_small=f(runs.get(part["sizes"][0], {}).get("cpu_s"), 1),
        first_imports_top=f(runs.get(top, {}).get("imports_s"), 1),
        not_measured=missing or "nothing",
    )


def _manifest(page, part: dict | None, img: Path) -> str:
    if not part or "ops" not in part:
        return page.fill("not-measured")
    text, found = growth_table(part, {}, "op_peak_mb")
    drawn = (
        plot(found, img / "perf-growth-manifest.png", "A manifest's operations", memory_key="op_peak_mb")
        if found
        else None
    )
    return page.fill(
        "growth-manifest",
        table=text,
        plot=f"![manifest operations against tracks](img/{drawn})" if drawn else "",
        largest=f"{part['sizes'][-1]:,}",
    )


def _remote(page, part: dict | None) -> str:
    if not part or "error" in part:
        return page.fill("not-measured") + (f"\n\n```\n{part['error'][-1500:]}\n```" if part else "")
    names = {
        "train": ("training, crops/s (median of the epochs after the first)", 1),
        "verify": ("`mrnet-store verify`, tracks/s", 1),
        "cp-download": ("`mrnet-store cp` S3 → local disk, MB/s", 2),
        "cp-upload": ("`mrnet-store cp` local disk → S3, MB/s", 2),
    }
    pinned = part.get("pinned") if isinstance(part.get("pinned"), dict) and "error" not in part["pinned"] else {}
    layouts = [(p, label) for p, label in ((pinned, "own core"), (part, "shared")) if p.get("tracks")]
    rows = []
    for key, (label, nd) in names.items():
        for p, where in layouts:
            m = p.get(key, {})
            local, s3, direct = m.get("local", {}), m.get("s3", {}), m.get("s3_direct", {})
            own = m.get("server", p.get("server", {})).get("direct", {}).get("requests_per_s")
            rows.append(
                [
                    label,
                    where,
                    f(local.get("rate"), nd) if "rate" in local else "failed",
                    f(direct.get("rate"), nd) if "rate" in direct else ("failed" if direct else "–"),
                    f(s3.get("rate"), nd) if "rate" in s3 else "failed",
                    f"**{f(m.get('ratio'))}**{_spread(m, 'ratio')}" if m.get("ratio") is not None else "–",
                    met(m.get("ratio"), RATIO_TARGET) if m.get("ratio") is not None else "–",
                    f(m.get("latency_ratio")),
                    f(m.get("s3fs_ratio")) + _spread(m, "s3fs_ratio") if m.get("s3fs_ratio") is not None else "–",
                    f(own, 0),
                ]
            )
    return page.fill(
        "growth-remote",
        tracks=f"{part['tracks']:,}",
        rounds=str(part.get("rounds", 1)),
        delay_ms=f(part["delay_s"] * 1e3, 0),
        table=table(
            [
                "",
                "S3 server on",
                "local disk",
                "S3, no latency added",
                "S3 + 20 ms",
                "S3 + 20 ms / local",
                f"≥ {RATIO_TARGET}",
                "S3 + 20 ms / no latency added",
                "S3 + 20 ms, s3fs reading / local",
                "the server's small GETs/s",
            ],
            rows,
        ),
        server_core=", ".join(map(str, pinned.get("cores", {}).get("server", []))) or "–",
        client_cores=", ".join(map(str, pinned.get("cores", {}).get("client", []))) or "–",
        **_remote_figures(part, ""),
        **_remote_figures(pinned, "_pinned"),
    )


def _spread(measure: dict, name: str) -> str:
    """`` (lowest–highest)`` of a ratio's rounds, when it had more than one.

    >>> _spread({"rounds": {"ratio": [0.8, 0.91, 0.85]}}, "ratio")
    ' (0.80–0.91)'
    """
    values = measure.get("rounds", {}).get(name, [])
    return f" ({f(min(values))}–{f(max(values))})" if len(values) > 1 else ""


def _remote_figures(part: dict, suffix: str) -> dict[str, str]:
    """The prose's figures of one layout's measurements, each name ending in ``suffix``. The ceiling is what the
    server answers through the proxy (small GETs per second) over local training's crops per second: the most
    training after its first epoch (one request per crop) can reach, as a share of local; ``served`` is the share
    of those answers training used."""
    train = part.get("train", {})
    server = train.get("server", part.get("server", {}))  # the training's own run
    plan = train.get("s3", {}).get("reading", {})
    local, s3, direct = (train.get(side, {}).get("rate") for side in ("local", "s3", "s3_direct"))
    rps = server.get("proxy", {}).get("requests_per_s")
    tracks, size = part.get("tracks"), part.get("store_bytes")
    verify_local = part.get("verify", {}).get("local", {}).get("rate")  # tracks/s
    cp_local = part.get("cp-download", {}).get("local", {}).get("rate")  # MB/s
    cp_tracks = cp_local * 1e6 / size * tracks if cp_local and size and tracks else None  # tracks/s
    figures = {
        "first_ratio": f(train.get("first_epoch_ratio")),
        "direct_rps": f(server.get("direct", {}).get("requests_per_s"), 0),
        "proxy_rps": f(rps, 0),
        "round_trip_ms": f(server.get("proxy", {}).get("round_trip_s", 0) * 1e3, 0),
        "ceiling": f(min(1.0, rps / local) if rps and local else None),
        "served": f(s3 / rps if rps and s3 else None),
        "train_ratio": f(train.get("ratio")),
        "train_latency": f(train.get("latency_ratio")),
        "s3fs_ratio": f(train.get("s3fs_ratio")),
        "direct_ratio": f(direct / local if direct and local else None),
        # verify and cp ask twice per track: the server's answers per second over two, as a share of local
        "verify_ceiling": f(min(1.0, rps / 2 / verify_local) if rps and verify_local else None),
        "cp_ceiling": f(min(1.0, rps / 2 / cp_tracks) if rps and cp_tracks else None),
        "verify_ratio": f(part.get("verify", {}).get("ratio")),
        "cp_ratio": f(part.get("cp-download", {}).get("ratio")),
        "cp_local_spread": _spread(part.get("cp-download", {}), "local").strip(" ()") or "–",
        "threads": str(plan.get("threads", "–")),
        "concurrent": str(plan.get("concurrent", "–")),
        "depth": str(plan.get("depth", "–")),
    }
    return {k + suffix: v for k, v in figures.items()}
