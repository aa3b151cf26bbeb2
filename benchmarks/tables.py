"""Numbers as the page prints them, Markdown tables, and the page's two overview tables.

``summary`` is one row per figure, a column per device kind; ``machine`` describes the machine and
the runs a result file came from.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import REPO


# --- formatting -----------------------------------------------------------------------------------
def f(x, nd: int = 2) -> str:
    """A number for the page: thousands separated and no decimals from 100 up, else ``nd`` decimals."""
    if x is None:
        return "–"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    return str(x)


def met(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return "**met**" if value >= target else "**missed**"


def flat(growth: float | None, limit: float = 1.25) -> str:
    if growth is None:
        return "not measured"
    return "**met**" if growth <= limit else "**missed**"


def listed(xs, nd: int = 2) -> str:
    return ", ".join(f(x, nd) for x in xs)


def table(head: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fig(res: dict | None, name: str) -> dict | None:
    """Figure ``name`` of a result, or None when it is missing or failed."""
    figure = (res or {}).get("figures", {}).get(name)
    return None if figure is None or "error" in figure else figure


def commit(res: dict) -> str:
    """The commit a result measured, as its run recorded it."""
    git = res.get("git", {})
    return f"{git.get('commit', '?')}{' + uncommitted changes' if git.get('dirty') else ''}"


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def option(w: dict, layers: int, dtype: str, codec: str) -> dict:
    """The write figure's row for one store option."""
    return next(o for o in w["options"] if o["layers"] == layers and o["dtype"] == dtype and o["codec"] == codec)


# --- the summary ----------------------------------------------------------------------------------
def summary(cpu: dict | None, gpu: dict | None) -> str:
    rows = [
        ["1. extraction efficiency (end to end / bare forward)", "≥ 0.9", "extraction", _extraction],
        ["2. batching gain (batched / one track at a time)", "report", "batching", lambda x: f"{f(x['speedup'])}x"],
        ["3. write limit (13 layers float16, codec none)", "report", "write", _write],
        ["4. loader efficiency (store / memmap crops/s)", "≥ 0.7", "loader", _loader],
        [
            "5. training (epoch: on the fly / store; step: in memory / loader)",
            "report; ≥ 0.95 on GPU",
            "training",
            _training,
        ],
        [
            "6. memory growth (peak anonymous memory, large / small dataset)",
            "flat (≤ 1.25x for 4x the data)",
            "memory",
            _memory,
        ],
        ["7. each model's training step (time per example, against MRNet small)", "report", "steps", _steps],
    ]
    return table(
        ["figure", "target", "CPU (this machine)", "GPU"],
        [
            [label, target, _cell(cpu, name, fn, "–"), _cell(gpu, name, fn, "not measured (no GPU in this session)")]
            for label, target, name, fn in rows
        ],
    )


def _cell(res: dict | None, name: str, fn, absent: str) -> str:
    if res is None:
        return absent
    figure = fig(res, name)
    return fn(figure) if figure else "not measured"


def _extraction(x: dict) -> str:
    u = x.get("utilisation")
    mfu = (
        f"; MFU {f(100 * u['steady_mfu'], 0)} %, {f(u['audio_hours_per_device_minute']['steady'], 3)} audio h per device-minute"
        if u
        else ""
    )
    return f"{f(x['efficiency'])} end to end, {f(x['steady_efficiency'])} steady ({met(x['steady_efficiency'], x['target'])}){mfu}"


def _write(x: dict) -> str:
    base = option(x, 13, "float16", "none")
    return (
        f"{f(base['bytes_per_audio_s'] / 1e3, 0)} kB per audio s; store writes {f(base['durable_MBps'], 0)} MB/s = "
        f"{f(base['vs_disk'])} of the disk's {f(x['disk']['MBps'], 0)} MB/s"
    )


def _loader(x: dict) -> str:
    e13, e1 = x["layers_13"]["efficiency"]["store"], x["layers_1"]["efficiency"]["store"]
    return f"{f(e13)} (13 layers), {f(e1)} (1 layer): {met(min(e13, e1), x['target'])}; amplification 1.0"


def _training(x: dict) -> str:
    gpu_part = (
        f"; loader {f(x['loader_efficiency'])} ({met(x['loader_efficiency'], x['target_gpu_loader'])})"
        if x["device"] == "cuda"
        else f"; in-memory/loader {f(x['loader_efficiency'])} (GPU target, n/a on CPU)"
    )
    return f"store {f(x['speedup_store_vs_on_the_fly'])}x faster than on the fly" + gpu_part


def _memory(x: dict) -> str:
    return (
        f"extraction {f(x['extraction_growth'])}x ({flat(x['extraction_growth'])}), training {f(x['training_growth'])}x "
        f"({flat(x['training_growth'])}) for {x['extraction'][-1]['clips'] // x['extraction'][0]['clips']}x / "
        f"{x['training'][-1]['tracks'] // x['training'][0]['tracks']}x the data"
    )


def _steps(x: dict) -> str:
    rows = sorted(x["rows"], key=lambda r: r["ms_per_example"])
    return f"{f(rows[0]['ms_per_example'], 1)} ms ({rows[0]['label']}) to {f(rows[-1]['ms_per_example'], 0)} ms ({rows[-1]['label']}) per example"


# --- the machine ----------------------------------------------------------------------------------
def machine(path: Path, res: dict) -> str:
    m = res["machine"]
    gpu = m.get("gpu")
    rows = [
        [
            "CPU",
            f"{m['cpu']}, {m['usable_cpus']} usable cores ({m['logical_cpus']} logical), torch threads {m['torch_threads']}",
        ],
        ["memory", f"{m['ram_gb']} GiB"],
        ["disk", _disk(m.get("disk", {}))],
        ["GPU", f"{gpu['name']} x{gpu['count']}, {gpu['memory_gb']} GiB, CUDA {gpu['cuda']}" if gpu else "none"],
        ["virtualization", m.get("virtualization") or "none detected"],
        [
            "software",
            f"{m['os']}, Python {m['python']}, " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()),
        ],
        ["date", _dates(res)],
        [
            "command",
            "; then ".join(
                f"`{r['command']}` ({f((r.get('seconds') or 0) / 60, 1)} min, {r.get('started', '?')}: {', '.join(figs)})"
                for r, figs in current_runs(res)
            )
            + f" ({res.get('profile', {}).get('name')} sizes)",
        ],
        ["code", f"commit {commit(res)}"],
        ["load average", _load(res, m["usable_cpus"])],
        ["results", f"`{shown(path)}`"],
    ]
    return table(["", ""], rows)


def _disk(disk: dict) -> str:
    rotational = {True: ", kernel reports rotational", False: ", non-rotational"}.get(disk.get("rotational"), "")
    return (
        f"{disk.get('device', '?')} ({disk.get('fstype', '?')}{rotational}), {disk.get('total_gb', '?')} GB, "
        f"{disk.get('free_gb', '?')} GB free; scratch {disk.get('path')}"
    )


def _dates(res: dict) -> str:
    finished = [fg.get("_run", {}).get("when", "?") for fg in res["figures"].values()]
    return f"{res.get('date')}; figures finished {min(finished)} to {max(finished)}"


def _load(res: dict, cores: int) -> str:
    load = [x[0] for x in (fg.get("_run", {}).get("load_before") for fg in res["figures"].values()) if x]
    return f"{min(load):.1f} to {max(load):.1f} when figures started (1-minute load; {cores} cores)" if load else "–"


def current_runs(res: dict) -> list[tuple[dict, list[str]]]:
    """The runs whose figures are still in ``res`` (a later run of a figure replaces it), each with those figures."""
    owner: dict[str, int] = {}
    for i, r in enumerate(res.get("runs", [])):
        for name in r.get("figures", []):
            owner[name] = i
    return [
        (r, [n for n, i in owner.items() if i == k and n in res.get("figures", {})])
        for k, r in enumerate(res.get("runs", []))
        if k in owner.values()
    ]
