"""docs/performance.md and its plots, regenerated from ``benchmarks/results/*.json``.

The newest full result of each device kind (CPU, CUDA) is shown; a quick result only when no full one
exists. Prose that explains a bottleneck lives here beside the numbers it quotes, so the document
always matches the results it was built from.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import REPO, RESULTS

DOC = REPO / "docs" / "performance.md"
IMG = REPO / "docs" / "img"


# --- picking results ------------------------------------------------------------------------------
def latest(device: str) -> tuple[Path, dict] | None:
    found = []
    for path in RESULTS.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("device") != device or not data.get("figures"):
            continue
        quick = path.stem.endswith("-quick")
        found.append((not quick, data.get("date", ""), path.stat().st_mtime, path, data))
    if not found:
        return None
    found.sort(key=lambda t: t[:3])
    return found[-1][3], found[-1][4]


# --- formatting -----------------------------------------------------------------------------------
def f(x, nd: int = 2) -> str:
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


def table(head: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fig(res: dict, name: str) -> dict | None:
    figure = res.get("figures", {}).get(name)
    return None if figure is None or "error" in figure else figure


# --- plots ----------------------------------------------------------------------------------------
CEILING_LABELS = {"serial-io": "IO1", "zarr-writer": "W2"}  # the variants put back the code as it was before these fixes


def _plots(res: dict, kind: str, img: Path = IMG) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    made = {}
    ex, ba = fig(res, "extraction"), fig(res, "batching")
    if ex:
        labels, values, colors = [], [], []
        labels.append(f"bare WavLM forward (batch {ex['settings']['batch_size']})")
        values.append(ex["bare"]["throughput"]), colors.append("#4c72b0")
        labels.append("mrnet-extract end to end")
        values.append(ex["end_to_end"]["throughput"]), colors.append("#55a868")
        if ba:
            labels.append("mrnet-extract, one track at a time")
            values.append(ba["one_at_a_time"]["throughput"]), colors.append("#c44e52")
        for name, v in ex.get("ceiling", {}).get("variants", {}).items():
            before = [CEILING_LABELS.get(part, part) for part in name.split("+") if part != "stub-model"]
            labels.append("pipeline ceiling, model stubbed" + (f" (before {' + '.join(before)})" if before else ""))
            values.append(v["best"]["steady_throughput"]), colors.append("#8c8c8c")
        fig_, ax = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.2))
        ax.barh(range(len(labels)), values, color=colors)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(left=min(1.0, min(values) / 2), right=max(values) * 3)
        ax.set_xlabel("audio seconds per second (log scale)")
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.3g}", va="center", fontsize=8)
        ax.set_title(f"Extraction throughput, {kind}")
        fig_.tight_layout()
        path = img / f"perf-extraction-{kind}.png"
        fig_.savefig(path, dpi=110)
        plt.close(fig_)
        made["extraction"] = path.name
    lo = fig(res, "loader")
    if lo:
        methods = [m for m in ("memmap", "store", "proposed", "zarr") if m in lo["layers_13"]["crops_per_s"]]
        names = {"memmap": "NumPy memmap", "store": "FeatureStore.read (fused, shipped)", "proposed": "FeatureStore.read + proposal L2",
                 "zarr": "Zarr chunk by chunk"}
        fig_, ax = plt.subplots(figsize=(7.5, 3.4))
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            vals = [lo[f"layers_{w}"]["crops_per_s"][m] for w in (13, 1)]
            ax.bar([i + (j - (len(methods) - 1) / 2) * width for i in range(2)], vals, width, label=names[m])
        ax.set_xticks([0, 1], ["13 layers", "1 layer"])
        ax.set_yscale("log")
        ax.set_ylabel("random 6 s crops per second (log)")
        ax.set_title(f"Crop reads, warm page cache, one process, {kind}")
        ax.legend(fontsize=8)
        fig_.tight_layout()
        path = img / f"perf-loader-{kind}.png"
        fig_.savefig(path, dpi=110)
        plt.close(fig_)
        made["loader"] = path.name
    return made


# --- sections -------------------------------------------------------------------------------------
def machine_section(path: Path, res: dict) -> str:
    m = res["machine"]
    disk = m.get("disk", {})
    gpu = m.get("gpu")
    load = [fg.get("_run", {}).get("load_before") for fg in res["figures"].values()]
    load = [x[0] for x in load if x]
    rows = [
        ["CPU", f"{m['cpu']}, {m['usable_cpus']} usable cores ({m['logical_cpus']} logical), torch threads {m['torch_threads']}"],
        ["memory", f"{m['ram_gb']} GiB"],
        ["disk", f"{disk.get('device', '?')} ({disk.get('fstype', '?')}{', kernel reports rotational' if disk.get('rotational') else ', non-rotational' if disk.get('rotational') is False else ''}), "
                 f"{disk.get('total_gb', '?')} GB, {disk.get('free_gb', '?')} GB free; scratch {disk.get('path')}"],
        ["GPU", f"{gpu['name']} x{gpu['count']}, {gpu['memory_gb']} GiB, CUDA {gpu['cuda']}" if gpu else "none"],
        ["virtualization", m.get("virtualization") or "none detected"],
        ["software", f"{m['os']}, Python {m['python']}, " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())],
        ["date", f"{res.get('date')}; figures finished {min(fg.get('_run', {}).get('when', '?') for fg in res['figures'].values())} to "
                 f"{max(fg.get('_run', {}).get('when', '?') for fg in res['figures'].values())}"],
        ["command", "; then ".join(f"`{r['command']}` ({f((r.get('seconds') or 0) / 60, 1)} min, {r.get('started', '?')}: {', '.join(figs)})"
                                   for r, figs in current_runs(res))
                    + f" ({res.get('profile', {}).get('name')} sizes)"],
        ["code", f"commit {res.get('git', {}).get('commit', '?')}{' + uncommitted changes' if res.get('git', {}).get('dirty') else ''}"],
        ["load average", f"{min(load):.1f} to {max(load):.1f} when figures started (1-minute load; {m['usable_cpus']} cores)" if load else "–"],
        ["results", f"`{path.relative_to(REPO) if path.is_relative_to(REPO) else path}`"],
    ]
    return table(["", ""], rows)


def current_runs(res: dict) -> list[tuple[dict, list[str]]]:
    """The runs whose figures are still in ``res`` (a later run of a figure replaces it), each with those figures."""
    owner: dict[str, int] = {}
    for i, r in enumerate(res.get("runs", [])):
        for name in r.get("figures", []):
            owner[name] = i
    return [(r, [n for n, i in owner.items() if i == k and n in res.get("figures", {})])
            for k, r in enumerate(res.get("runs", [])) if k in owner.values()]


def extraction_section(res: dict, plots: dict) -> str:
    ex = fig(res, "extraction")
    if not ex:
        return "_Not measured in this run._"
    b, e = ex["bare"], ex["end_to_end"]
    busy = e.get("busy_s", {})
    out = [
        f"Dataset: {ex['dataset']['clips']} MP3 clips of {ex['dataset']['clip_seconds']:g} s ({ex['dataset']['source']}; "
        f"{ex['dataset']['format']}). Settings: batch {ex['settings']['batch_size']}, unit {ex['settings']['unit_size']} tracks, "
        f"13 layers float16, codec none, precision {b['precision']} on {b['device']}. "
        f"Best of {ex['settings']['rounds']} interleaved rounds per side.",
        "",
        table(["", "audio s/s", "seconds", "notes"], [
            ["bare WavLM forward (decoded audio in memory)", f(b["throughput"]), f(b["forward_s"], 1),
             f"{b['calls']} forward calls, batch sizes {b['batch_sizes']}"],
            ["`mrnet-extract` end to end (`pipeline.run`)", f(e["throughput"]), f(e["run_s"], 1),
             f"setup {f(e['setup_s'], 1)} s (scan, model load, store), then {f(e['work_s'], 1)} s of units"],
            ["end to end, steady state (setup left out)", f(e["steady_throughput"]), f(e["work_s"], 1),
             f"inside the units: model {f(busy.get('model'), 1)} s, decode {f(busy.get('decode'), 2)} s, write {f(busy.get('write'), 2)} s (summed over the 2 unit threads)"],
        ]),
        "",
        f"**Efficiency = {f(ex['efficiency'])} end to end, {f(ex['steady_efficiency'])} in steady state** "
        f"(target ≥ {ex['target']}: {met(ex['steady_efficiency'], ex['target'])}). "
        f"Rounds: bare {', '.join(f(x) for x in ex['rounds']['bare'])}; end to end {', '.join(f(x) for x in ex['rounds']['end_to_end'])} audio s/s; "
        f"CPU share of the machine the children got: bare {', '.join(f(x) for x in ex['rounds']['cpu_share']['bare'])}, "
        f"end to end {', '.join(f(x) for x in ex['rounds']['cpu_share']['end_to_end'])}.",
        "",
        f"Decoding and resampling alone run at {f(b['decode_rate'])} audio s/s on one thread (MP3 44.1 kHz stereo to 16 kHz mono).",
    ]
    out += utilisation_text(ex)
    if b["device"] == "cpu":
        beat = ("The steady state even beats the bare forward: the executor keeps two units in flight, so two forward "
                "passes can share the cores, which sometimes uses them better than one pass at a time. "
                if ex["steady_efficiency"] > 1.0 else "")
        out += ["",
                f"On this CPU the model is the whole cost: decoding and writing take "
                f"{f(100 * ((busy.get('decode') or 0) + (busy.get('write') or 0)) / (busy.get('model') or 1), 1)} % of the model's "
                f"time and run in the other unit thread while the model runs. " + beat + "The setup (scanning, importing "
                "transformers' WavLM code, which pulls in torch._dynamo and is most of it, loading the weights, hashing them for "
                "the store's provenance, creating the store) is a fixed cost of a few seconds per run that a real dataset "
                "amortises; the steady-state figure leaves it out."]
    c = ex.get("ceiling")
    if c:
        rows = []
        for name, v in c["variants"].items():
            bb = v["best"]
            rows.append([name, f(bb["steady_throughput"]), ", ".join(f(x) for x in v["rounds"]), ", ".join(f(x, 1) for x in v["cpu_ms_per_audio_s"]),
                         f"decode {f(bb['busy_s'].get('decode'), 1)} s, stitch {f(bb['busy_s'].get('model'), 1)} s, write {f(bb['busy_s'].get('write'), 1)} s"])
        out += ["", "### The pipeline's own ceiling",
                "",
                f"What is left when the model costs nothing: the same run with the WavLM forward replaced by a stub that returns "
                f"random features of the right shape at once (`benchmarks/proposals.py: stub_model`), on {c['clips']} clips of 30 s, "
                f"batch {c['batch_size']}, unit {c['unit_size']} (the defaults). This is the most audio per second any model, however "
                f"fast, can get through `mrnet-extract` in one process on this machine; on a GPU, efficiency is at most this ceiling "
                f"over the bare GPU forward.",
                "",
                table(["variant", "best steady audio s/s", "rounds", "CPU ms per audio s", "inside the units (best round, both threads)"], rows),
                "",
                "Variants: `stub-model` is the shipped pipeline; `serial-io` puts back one-track-at-a-time decoding and writing in "
                "each unit's thread (before the I/O pool, IO1 below); `zarr-writer` puts back Zarr's codec pipeline for writes "
                "(before W2). The rounds of these short runs swing with whatever else the machine is doing; CPU milliseconds per "
                "audio second (all threads of the child) is the steadier measure of the work each variant does."]
    io = ex.get("io_scaling")
    if io:
        counts = list(io["decode"])
        one_d, one_w = io["decode"][counts[0]], io["write"][counts[0]]
        rows = [[n, f(io["decode"][n], 0), f(io["decode"][n] / one_d), f(io["write"][n], 0), f(io["write"][n] / one_w)] for n in counts]
        out += ["", "### Decode and write limits by threads", "",
                f"The pipeline's two CPU stages alone, on a thread pool of n threads (what `--io-threads` sizes): decoding "
                f"{f(io['decode_audio_s'], 0)} s of MP3 (44.1 kHz stereo to 16 kHz mono) and writing {f(io['write_audio_s'], 0)} s of "
                "13-layer float16 features (`write_track`, codec none, page cache).",
                "",
                table(["threads", "decode audio s/s", "x one thread", "write audio s/s", "x one thread"], rows),
                "",
                "Both release the GIL (libsndfile and libsoxr decode, NumPy and the file write), so they scale with the cores "
                "until memory bandwidth or the disk stops them; on a GPU machine this table says how many audio seconds per "
                "second its cores can feed the GPU."]
    if plots.get("extraction"):
        out += ["", f"![extraction throughput](img/{plots['extraction']})"]
    return "\n".join(out)


def utilisation_text(ex: dict) -> list[str]:
    u = ex.get("utilisation")
    if not u:
        return []
    ops = u["flops_by_op"]
    total = sum(ops.values())
    share = lambda *names: 100 * sum(ops.get(n, 0) for n in names) / total  # noqa: E731
    where = "GPU" if u["device"] == "cuda" else "CPU"
    return ["",
            f"**Model FLOP utilisation.** WavLM-base costs {f(u['flops_per_audio_s'] / 1e9, 1)} GFLOP per audio second over "
            f"{f(u['window_s'], 0)} s windows (`torch.utils.flop_counter`: convolutions {f(share('aten.convolution'), 0)} %, "
            f"linear layers {f(share('aten.addmm', 'aten.mm'), 0)} %, attention products {f(share('aten.bmm', 'aten.baddbmm'), 0)} %). "
            f"This {where}'s matrix-multiply peak, timed in the same run ({u['peak_matmul']}, {u['device_name']}), is "
            f"{f(u['peak_flops'] / 1e12, 3)} TFLOP/s, so the bare forward runs at **{f(100 * u['bare_mfu'], 1)} % MFU** and "
            f"`mrnet-extract` in steady state at **{f(100 * u['steady_mfu'], 1)} %**: "
            f"{f(u['audio_hours_per_device_minute']['steady'], 3)} audio hours per {where}-minute end to end "
            f"({f(u['audio_hours_per_device_minute']['bare'], 3)} bare). MFU here is against the measured peak, not the "
            "data sheet's."]


def batching_section(res: dict) -> str:
    ba = fig(res, "batching")
    if not ba:
        return "_Not measured in this run._"
    out = [
        table(["", "audio s/s (end to end)", "steady state", "rounds"], [
            [f"batch {ba['batch_size']} (equal-length windows)", f(ba["batched"]["throughput"]), f(ba["batched"]["steady_throughput"]),
             ", ".join(f(x) for x in ba["rounds"]["batched"])],
            ["batch 1 (one track per forward, the authors' way)", f(ba["one_at_a_time"]["throughput"]), f(ba["one_at_a_time"]["steady_throughput"]),
             ", ".join(f(x) for x in ba["rounds"]["one_at_a_time"])],
        ]),
        "",
        f"**Batching speedup: {f(ba['speedup'])}x end to end ({f(ba['steady_speedup'])}x in steady state).**",
    ]
    if ba.get("bare"):
        out.append(f" Bare forward alone: {f(ba['bare']['batched'])} against {f(ba['bare']['one_at_a_time'])} audio s/s, {f(ba['bare']['speedup'])}x.")
        sweep = ba["bare"].get("sweep")
        u = (fig(res, "extraction") or {}).get("utilisation")
        if sweep:
            rows = [[size, f(tp, 0), f(100 * tp * u["flops_per_audio_s"] / u["peak_flops"], 1) if u else "–", f(tp / 60, 3)]
                    for size, tp in sweep.items()]
            out += ["", "The bare forward by batch size (windows of the clips' length, one process, best of the rounds):", "",
                    table(["batch", "audio s/s", "MFU %", "audio h per device-minute"], rows)]
    if res.get("device") == "cpu":
        out += ["", "A CPU has nothing to gain from batching: one 30 s window is already a large matrix problem for 2 cores, and "
                    "a batch of several multiplies the attention and activation memory traffic without adding arithmetic units. "
                    "The batch size worth having is a GPU's, where one window leaves most of the device idle; that is what the GPU "
                    "run of this figure measures."]
    return "\n".join(out)


def write_section(res: dict) -> str:
    w = fig(res, "write")
    if not w:
        return "_Not measured in this run._"
    rows = []
    for o in sorted(w["options"], key=lambda o: (-o["layers"], o["dtype"], o["codec"])):
        rows.append([o["layers"], o["dtype"], o["codec"], f(o["bytes_per_audio_s"] / 1e3, 1), f(o["ratio"], 3), f(o["cache_MBps"], 0),
                     f(o["durable_MBps"], 0), f(o["vs_disk"]), f(o["absorbs_audio_s_per_s"], 0)])
    d = w["disk"]
    wt = w["write_track"]
    lossy = w["lossy"]
    base = next(o for o in w["options"] if o["layers"] == 13 and o["dtype"] == "float16" and o["codec"] == "none")
    zstd = next(o for o in w["options"] if o["layers"] == 13 and o["dtype"] == "float16" and o["codec"] == "zstd")
    blosc = next(o for o in w["options"] if o["layers"] == 13 and o["dtype"] == "float16" and o["codec"] == "blosc")
    return "\n".join([
        f"Features: {w['features']['tracks']} tracks, {f(w['features']['audio_s'], 0)} audio s ({w['features']['source']}). "
        f"Disk: sequential write of {d['MB']} MiB + fsync = **{f(d['MBps'], 0)} MB/s** (again after the options: {f(w['disk_after']['MBps'], 0)} MB/s). "
        "Each option: every track through `StoreWriter.write_track`, then every file fsynced; best of two passes.",
        "",
        table(["layers", "dtype", "codec", "kB per audio s", "ratio", "MB/s to page cache", "MB/s durable", "on-disk MB/s vs disk",
               "audio s/s it absorbs"], rows),
        "",
        f"- **Bytes per audio second**: all 13 layers in float16 take {f(base['bytes_per_audio_s'] / 1e3, 0)} kB per audio second per channel "
        f"({f(w['bytes_13_float16'] / 1e3, 1)} kB of features plus the shard index), 3.6 GB per audio hour. float32 doubles it; one layer divides it by 13.",
        f"- **Write bandwidth against the disk**: the uncompressed 13-layer store is written at {f(base['durable_MBps'], 0)} MB/s durable, "
        f"{f(base['vs_disk'])} of the disk's {f(d['MBps'], 0)} MB/s"
        + (": the disk is the limit." if base["vs_disk"] >= 0.7 else ": the writer's CPU time is the limit here, not the disk (one writing thread; "
           "`mrnet-extract` writes on its I/O pool, several tracks at once).")
        + f" At that rate one writing thread absorbs {f(base['absorbs_audio_s_per_s'], 0)} audio seconds per second.",
        f"- **Lossless codecs buy little on these features**: zstd {f(zstd['ratio'], 3)}x, blosc (byte shuffle + zstd) {f(blosc['ratio'], 3)}x for "
        f"13 layers float16, written at {f(zstd['durable_MBps'], 0)} and {f(blosc['durable_MBps'], 0)} MB/s against {f(base['durable_MBps'], 0)} MB/s "
        "uncompressed, and every crop then pays decompression (Zarr's path, figure 4). float16 features carry ~10 bits of near-random "
        "mantissa. (Random-weight WavLM; trained weights may compress somewhat better, see docs/store.md.)",
        f"- **Lossy options buy much more**: float16 instead of float32 halves the bytes for a relative RMS error of {lossy['float16_rel_rms_error']:.1e} "
        f"(max abs error {lossy['float16_max_abs_error']:.1e} on values up to {f(lossy['max_abs_value'], 1)}); storing only the layers a model "
        "uses (`--layers`) divides by 13/L, e.g. 13x for one layer.",
        f"- **`write_track` itself** ({f(wt['track_seconds'], 0)} s tracks, 13 layers float16, page cache, best of 5): "
        f"{f(_wt(wt)['ms_per_track'], 1)} ms per track, {f(_wt(wt)['audio_s_per_s'], 0)} audio s/s per writing thread"
        + (f"; Zarr's codec pipeline, the write path before W2, took {f(wt['zarr_writer']['ms_per_track'], 1)} ms in the same run "
           f"({f(wt['speedup'])}x). W1 had taken that path from 121 to 86 ms." if "zarr_writer" in wt else "."),
    ])


def _wt(wt: dict) -> dict:
    """write_track timing: current results, or the shipped side of the older side-by-side format."""
    return wt.get("shipped", wt)


def loader_section(res: dict, plots: dict) -> str:
    lo = fig(res, "loader")
    if not lo:
        return "_Not measured in this run._"
    rows = []
    for w in (13, 1):
        r = lo[f"layers_{w}"]
        rows.append([f"{w} layer{'s' if w > 1 else ''}", f(r["crops_per_s"]["memmap"], 0), f(r["crops_per_s"]["store"], 0),
                     f"**{f(r['efficiency']['store'])}** ({met(r['efficiency']['store'], lo['target'])})",
                     f(r["crops_per_s"]["zarr"], 0), f(r["efficiency"]["zarr"], 3), f(r["read"]["zarr"]["amplification"]),
                     f(r["read"]["zarr"]["requests_per_crop"], 0)])
    out = [
        f"{lo['tracks']} tracks of 30 s, 13 x 768 float16, inner chunks of {lo['layers_13']['chunk_frames']} frames (the default), "
        f"codec none; the memmap holds the same arrays. {lo['layers_13']['crops']} 13-layer and {lo['layers_1']['crops']} 1-layer crops "
        f"of {lo['crop_frames']} frames, warm page cache, one process, best of {lo['repeat']} alternating passes.",
        "",
        table(["crop", "memmap crops/s", "store crops/s", "store / memmap (target ≥ 0.7)",
               "Zarr path crops/s", "Zarr / memmap", "Zarr read amplification", "Zarr requests per crop"], rows),
        "",
        "Read amplification of `FeatureStore.read` on an uncompressed local store is 1.0: the fused read "
        "(`store/shardread.py`) maps the shard and copies only the crop's frames, like the memmap (both page in whole 4 kB "
        "pages). Zarr's own path, still used for compressed stores and as the fallback, fetches whole inner chunks "
        f"({f(lo['layers_13']['read']['zarr']['amplification'])}x the bytes used with {lo['layers_13']['chunk_frames']}-frame chunks) "
        "and pays a per-chunk overhead of a fraction of a millisecond in its asyncio pipeline, which is why it is "
        f"{f(1 / lo['layers_13']['efficiency']['zarr'], 0)}x (13 layers) and {f(1 / lo['layers_1']['efficiency']['zarr'], 0)}x (1 layer) "
        "slower than a memmap; the fused read is what made the target reachable.",
        "",
        "Before L2 (below, applied) the fused read sat right at the target (0.72 and 0.72 in the recorded run, ±0.1 between "
        "runs on this shared machine): it spent about as long in Python per inner chunk as the memmap spends copying; a 13-layer "
        "crop is ~39 inner chunks of 150 frames. It now does one slice assignment per chunk out of a per-track view of the "
        "shard's chunks.",
    ]
    if plots.get("loader"):
        out += ["", f"![crop reads](img/{plots['loader']})"]
    return "\n".join(out)


def training_section(res: dict) -> str:
    t = fig(res, "training")
    if not t:
        return "_Not measured in this run._"
    runs = t["runs"]
    rows = [
        ["store (real loop and loader, `mrnet.train.loop.train`)", f(t["median_step_s"]["store"]), f(t["epoch_s"]["store"], 1),
         ", ".join(f(x) for x in t["rounds_median_step_s"]["store"]), f(runs["store"]["memory"]["peak_pss_mb"], 0)],
        ["batches already in memory", f(t["median_step_s"]["memory"]), f(t["epoch_s"]["memory"], 1),
         ", ".join(f(x) for x in t["rounds_median_step_s"]["memory"]), f(runs["memory"]["memory"]["peak_pss_mb"], 0)],
        ["WavLM on the fly from decoded audio (the authors' way)", f(t["median_step_s"]["on_the_fly"]), f(t["epoch_s"]["on_the_fly"], 1),
         ", ".join(f(x) for x in t["rounds_median_step_s"]["on_the_fly"]), f(runs["on_the_fly"]["memory"]["peak_pss_mb"], 0)],
    ]
    out = [
        f"{t['model']}; batch {t['batch']}; {t['train_tracks']} training tracks = {t['steps_per_epoch']} steps per epoch; "
        f"median of {t['timed_steps']} steps after {t['warmup_steps']} warm-up, best of the interleaved rounds; device {t['device']}, "
        f"loader: {runs['store'].get('loader') or str(runs['store']['num_workers']) + ' DataLoader workers'}.",
        "",
        table(["", "median step s", "epoch s (steps x median)", "round medians", "peak PSS MB"], rows),
        "",
        f"**Streaming from the store is {f(t['speedup_store_vs_on_the_fly'])}x faster per epoch than computing WavLM on the fly** "
        f"(WavLM is {f(100 * t['wavlm_share_on_the_fly'], 0)}% of an on-the-fly step here).",
        "",
        loader_rate_text(t),
        "",
        f"Step time in memory / with the real loader = **{f(t['loader_efficiency'])}** "
        + (f"(target ≥ {t['target_gpu_loader']} on a GPU: {met(t['loader_efficiency'], t['target_gpu_loader'])})." if t["device"] == "cuda"
           else f"on this CPU. The ≥ {t['target_gpu_loader']} target is for a GPU, where the model no longer shares cores with the "
                "loader; here the loader and the model compete for the same 2 cores, and a number near 1 (or above it, within "
                "noise) only says the loader is not what limits a CPU step."),
    ]
    return "\n".join(out)


def flat(growth: float | None) -> str:
    if growth is None:
        return "not measured"
    return "**met**" if growth <= 1.25 else "**missed**"


def loader_rate_text(t: dict) -> str:
    r = t.get("loader_rate")
    if not r or "apply_ms_per_crop" not in r:
        return ""
    where = "on this CPU" if r["apply_device"] == "cpu" else "on the GPU"
    return (f"**Reading a crop (T1, applied).** One thread reads {f(r['augment'], 0)} crops/s from the store, drawing each "
            f"crop's augmentation included ({f(r['no_augment'], 0)} without the draw; before T1, when the loader also drew the "
            "noise for every element, 32). The augmentation's arithmetic runs inside the training step on the model's device: "
            f"`Augment.apply` costs {f(r['apply_ms_per_crop'], 1)} ms per crop {where} ({r['apply_threads']} threads), part of "
            "the step time in both columns above. See T1 below for the before and after." + feed_text(t))


def feed_text(t: dict) -> str:
    fd = t.get("feed_rate")
    if not fd or "threads" not in fd:
        return ""

    def listed(kind: str, unit: str) -> str:
        return ", ".join(f"{f(v, 0)} with {k} {unit}{'s' if k != '1' else ''}" for k, v in fd[kind].items())

    best = max(fd["threads"].values())
    return (f"\n\n**What the loader delivers (IO2, applied).** Item rates leave out what a batch costs on its way into the "
            f"training loop. Timed as `fit` loads (batches of {fd['batch']}, several epochs, start-up left out), in crops/s: "
            f"the default reading threads {listed('threads', 'thread')} (automatic here: {fd['auto_threads']}); a DataLoader "
            f"with worker processes (`--num-workers`) {listed('workers', 'worker')}; the same DataLoader with the per-item "
            f"batches of the code before IO2 {listed('per_item', 'worker')}. At the paper's batch of 48 the threads' best is "
            f"{f(best / 48, 1)} steps/s: a GPU step shorter than {f(48e3 / best, 0)} ms would wait for data on this machine's cores.")


def memory_section(res: dict) -> str:
    m = fig(res, "memory")
    if not m:
        return "_Not measured in this run._"
    rows = []
    for x in m["extraction"]:
        mm = x["memory"]
        rows.append([f"extraction: {x['clips']} clips x {x['clip_seconds']:g} s ({x['units']} units of {x['unit_size']})",
                     f(mm["maxrss_mb"], 0), f(mm["peak_rss_mb"], 0), f(mm["peak_pss_mb"], 0), f(mm["peak_pss_anon_mb"], 0)])
    for x in m["training"]:
        mm = x["memory"]
        rows.append([f"training 1 epoch ({x['preset']}): {x['tracks']} tracks x {x.get('track_seconds', 30):g} s ({f(x['store_gb'], 2)} GB)",
                     f(mm["maxrss_mb"], 0), f(mm["peak_rss_mb"], 0), f(mm["peak_pss_mb"], 0), f(mm["peak_pss_anon_mb"], 0)])
    ex_growth, tr_growth = m.get("extraction_growth"), m.get("training_growth")
    ex_ratio = m["extraction"][-1]["clips"] / m["extraction"][0]["clips"]
    tr_ratio = m["training"][-1]["tracks"] / m["training"][0]["tracks"]
    return "\n".join([
        table(["run", "main process peak RSS MB (VmHWM, exact)", "process tree peak RSS MB", "peak PSS MB", "peak anonymous PSS MB"], rows),
        "",
        f"**Extraction: {ex_ratio:g}x the data, {f(ex_growth)}x the anonymous memory. Training: {tr_ratio:g}x the data, "
        f"{f(tr_growth)}x the anonymous memory** ({flat(ex_growth)} and {flat(tr_growth)}: here \"flat\" is read as at most 1.25x "
        "for 4x the data; repeated runs on this machine move these ratios by about ±0.1, and PSS is sampled every 0.3 s).",
        "",
        "Extraction memory follows the units in flight (2 per process: their decoded audio and features), not the dataset; "
        "the first ~10 units add 0.1-0.4 GB while glibc's allocator settles (its mmap threshold rises after the first large "
        "free, so later feature arrays come from heap arenas that keep freed space), after which it stays put: 24 and 48 clips "
        "of 10 s peaked at 1.14 and 1.15 GB of anonymous memory in a separate run. Fixing the threshold with "
        "`mallopt(M_MMAP_THRESHOLD, 128 kB)` made it flat from the first unit (1.02x from 4 to 24 clips) but cost ~8 % of "
        "throughput here (every large tensor page-faulted afresh), so it is not proposed (`benchmarks/proposals.py: "
        "fixed_mmap_threshold`). "
        "In training, RSS and PSS grow with the number of distinct tracks read because the fused reader keeps up to 128 shards "
        "memory-mapped per process and their touched pages count as resident; those are file pages the kernel drops under "
        "pressure (page cache), not allocations, which is why the growth test uses anonymous memory.",
    ])


FINDINGS = """\
How each bottleneck was found: `py-spy record` (sampling every thread, `-f raw`) on the benchmark's
own children, and `cProfile` where only the calling thread matters. All fixes are measured side by
side with the shipped code in the same run (`benchmarks/proposals.py` applies each one as a patch, in
a child process or switched on only around its own calls), and none changes a stored or returned
value: with all of them applied (`BENCH_PATCHES=L2,W1,D1`, a pytest plugin calling the same patch
functions), `tests/store`, `tests/extract/test_engines.py` (batched equals one track at a time),
`test_windows.py`, `test_pipeline.py` (store round trip) and `tests/train/test_data.py` pass, 90 tests.

**Before and after.** L2, W1 and D1 were measured side by side with the code as it was (commit
c7ee780; that run is kept in `{history}`), then applied (commit cc501f5); the figures above are
measured on the code with them. Before = the code as it was, side by side = the proposal in the same
run as "before", after = this page's run (for W1 and D1: the run right after they were applied, commit
b17b587, kept in `benchmarks/results/history/`; W2 and IO1 moved those figures again). W2, IO1 and IO2 are
measured against the code as it was in every run (`benchmarks/proposals.py: zarr_writer,
serial_io`), so their "before" is this page's run too. T1
changes what a sample is (where its noise is drawn), so it has no side-by-side column: its "before" is
the run kept in `benchmarks/results/history/` from the code before it (commit b17b587).

{before_after}

**L1, crop reads through Zarr (fixed before this run, in `store/shardread.py`).** Profile of 600
13-layer crops through `FeatureStore.read` as it was: 95 % of the samples in Zarr's event-loop
thread: `concurrent_map` → `ShardingCodec._decode_partial_single` → `LocalStore.get` →
`asyncio.to_thread` (a thread-pool hop, `open`, `seek`, `read` per inner chunk), `NDBuffer.__setitem__`,
`ThreadPoolExecutor.submit`. A 6 s crop of 13 layers is ~40-50 inner chunks, each a task, so a crop cost
~20 ms for 6 MB that a memcpy moves in under 1 ms: 0.02-0.03 of a memmap (the `zarr` column of figure 4
still shows it). The fused read that maps the shard once and copies each chunk's frames straight into
the result brought `FeatureStore.read` to the memmap's speed (figure 4).

**L2, the fused read's per-chunk Python (`store/shardread.py`; applied).** `cProfile` of 20,000
one-layer crops through `FeatureStore.read`: 53 µs per crop, 42 µs of it inside `_read_mapped` for
2-3 chunk copies that cost ~7 µs each (timed alone); the rest is per-chunk Python (`shard[off:off +
size].view(...).reshape(...)`, `max`/`min`, two slicings). A memmap crop costs ~36 µs. A gather with one
fancy index over all frames (tried) is slower for one layer (0.64 of the memmap). What works: view the
mapped shard once per track as an array of inner chunks `(n, channels, chunk_frames, dim)` (the writer
stores equal, aligned chunks), so each chunk of a crop is one slice assignment. Same results, same
errors ({l2}). The change, as measured and then applied:

  ```diff
  --- a/store/shardread.py
  +++ b/store/shardread.py
   def _read_mapped(index: ShardIndex, start: int, stop: int, layers: list[int]) -> np.ndarray:
  -    cc, _, ct, cd = index.chunk
  -    shard = _mapped(index.path)
  -    table = index.entries  # plain lists: this loop runs per chunk per crop
  -    out = np.empty((cc, len(layers), stop - start, cd), dtype=index.dtype)
  -    expect = cc * ct * cd * index.dtype.itemsize
  -    for li, layer in enumerate(layers):
  -        for b in range(start // ct, (stop - 1) // ct + 1):
  -            ... (per chunk: bounds, table lookup, view + reshape, copy)
  +    chunks, ids, n = _chunk_view(index)  # cached on the index: (n, C, ct, D) view, chunk ids per (layer, block), -1 = empty
  +    ct = index.chunk[2]
  +    out = np.empty((chunks.shape[1], len(layers), stop - start, chunks.shape[3]), dtype=chunks.dtype)
  +    b0, b1 = start // ct, (stop - 1) // ct
  +    for li, layer in enumerate(layers):
  +        row, o, pos = ids[layer], out[:, li], 0
  +        for b in range(b0, b1 + 1):
  +            lo = start - b * ct if b == b0 else 0
  +            hi = stop - b * ct if b == b1 else ct
  +            cid = row[b]
  +            if cid < 0:
  +                o[:, pos : pos + hi - lo] = index.fill
  +            elif cid >= n:
  +                raise OSError(f"{{index.path}}: shard shorter than its index says (truncated write?)")
  +            else:
  +                o[:, pos : pos + hi - lo] = chunks[cid, :, lo:hi]
  +            pos += hi - lo
  +    return out
  ```

  with `_chunk_view(index)` building `shard[: n * size].view(dtype).reshape(n, C, ct, D)` and
  `ids = offsets // size` once per track (falling back to the current loop if any chunk is not whole,
  equal-sized and aligned).

**E1, the extraction pipeline's ceiling (proposals W1 and D1).** On a CPU the model hides everything,
but the ceiling run (model stubbed) shows what a fast GPU would meet. Profile of that run (py-spy, the
unit threads): `StoreWriter.write_track` 62 % (of which Zarr's `Array.__setitem__` 40 % and
`create_array` 14 %, the rest `checksum`), decoding 18 % (libsndfile MP3 16 %, soxr 4 %),
`run_windowed` 17 % (`stitch` 10 % and `np.stack` of the channels 7 %: two full copies of every
track's features). In Zarr's event-loop thread, 14 % of the samples are `NDBuffer.all_equal` →
`np.array_equal`: with `write_empty_chunks=False` (Zarr's default) every inner chunk is compared with
the fill value before it is written, a full extra pass over the data, to skip chunks of zeros that
features never have.

- **W1 (store/writer.py, `StoreWriter.write_track`; applied)**: ask Zarr to write every chunk without the
  emptiness check ({w1}).

  ```diff
  --- a/store/writer.py
  +++ b/store/writer.py
  @@ def write_track(self, key: str, features: np.ndarray) -> str:
               compressors=compressors_for(p.extraction.get("codec", "none"), p.dtype),
               dimension_names=("channel", "layer", "frame", "dim"),
               overwrite=True,
  +            config={{"write_empty_chunks": True}},  # features are never all zeros; skip Zarr's per-chunk emptiness pass
           )[...] = data
  ```

  Stored bytes are identical for any chunk that is not all zeros; an all-zero chunk is now stored
  instead of left out, and reads back the same. Ceiling run with W1: see the table in figure 1.
- **D1 (extract/windows.py, `run_windowed`; applied)**: for a mono track, `np.stack(channels)` copies the
  stitched features once more for nothing (7 % of the ceiling profile); `channels[0][None]` is the same
  array without the copy:

  ```diff
  -        result.append(np.stack(channels))  # (C, L, T, D)
  +        result.append(channels[0][None] if len(channels) == 1 else np.stack(channels))  # (C, L, T, D)
  ```

**W2, writing shards without Zarr's codec pipeline (`store/shardwrite.py`; applied).** With W1 and D1
in, `write_track` was still the largest part of the ceiling. Per 30 s track (13 layers float16,
30 MB) its time went to `np.isfinite` (NumPy emulates float16 arithmetic, so this check alone was
about a third of it), the CRC-32, and Zarr: `create_array(overwrite=True)` (existence checks and
deletes, a dozen requests on S3) and the sharding codec's one task per inner chunk on Zarr's single
event-loop thread, each chunk copied into a buffer and the buffers joined. For codec `none` a shard is just the array's bytes in
chunk order plus an index, so `write_track` now writes it directly: each inner chunk is `channels`
slices of the track's array (plus zero padding in a layer's last chunk) handed to the file without a
copy, then the index and its CRC-32C; `zarr.json` is the document Zarr itself makes for that shape
(in an in-memory store), written after the shard. Finiteness of float16 is checked on the exponent
bits, with integer operations NumPy does not emulate. Zarr reads the arrays back exactly and its metadata is byte-for-byte its
own (`tests/store/test_shardwrite.py`); on S3 a track is two PUTs (counted at the server in that
test). {w2}

**IO1, decoding and writing on an I/O pool (`extract/pipeline.py`; applied).** Each unit decoded its
tracks one after another and wrote them one after another in its own thread, so with the executor's
two units in flight at most two cores decoded or wrote, whatever the machine; a GPU's 16 cores
would sit mostly idle while the GPU waited. `process_unit` now hands decoding and writing to one
thread pool per process (`--io-threads`, default the process's share of the cores: all of them for
one GPU, half each for two), and libsndfile, libsoxr, NumPy copies and file writes release the GIL.
Rows, journal order and stored bytes do not change (`test_decoding_and_writing_threads_change_nothing_in_the_store`).
On this 2-core machine there is little to gain, since the two unit threads already keep both cores
busy; the ceiling table in figure 1 measures it side by side (`serial-io`), and a GPU run measures it
where it matters.

**IO2, batches read in place, by threads (`train/data.py`: `CropDataset.__getitems__`, `Prefetcher`;
applied).** Item rates of over a thousand crops/s per thread (figure 5) did not survive the trip into
the training loop: through a DataLoader, 2 worker processes delivered a small fraction of that (the
table above, "before"). Each batch byte was written three
times into fresh memory (the crop, `np.stack` in `collate`, the move to shared memory for the queue),
and fresh memory costs page faults, 4 kB at a time for torch tensors and shared memory, in the worker
and again in the training process. Now the datasets build whole batches: one batch array, each crop
(or whole track) read straight into its slot (`FeatureStore.read(..., out=)`); and by default no
worker processes at all: `Prefetcher` reads the next batches on threads of the training process
(file reads and NumPy copies release the GIL), into memory NumPy allocates with huge pages. Batches
are equal to the stacked crops, and a run trains the same model to the bit with either loader
(`test_the_default_thread_loader_trains_the_same_model_as_a_dataloader`). `--num-workers N` still
gives a DataLoader with N processes (batches read in place into shared memory). Figure 5 has the
rates side by side with the code before.

**T1, the training loader's augmentation (`train/data.py`, `train/loop.py`; applied).** Per crop,
`CropDataset` read the store in well under a millisecond (figure 4) but `Augment` then spent ~30 ms
drawing float32 Gaussian noise for every element of the crop with NumPy: one worker made 32 crops/s,
and the default 2 workers capped the paper's batch of 48 at 1.3 steps/s, whatever the GPU. `Augment`
now works in two halves: the loader draws each sample's few random choices (noise on/off, its mean,
std and seed, the mask spans) from the sample's own `(seed, epoch, index)` generator, and ships the
crop as stored (float16, half the bytes through the worker queue and the pinned copy);
`loop.train_step` converts to float32 on the device and applies the batch's augmentation there, each
sample's noise from a generator seeded with its own draw. The distribution is the same (noise mean in
[-0.03, 0.03], std in [0.05, 0.1], scaled per feature; masks filled with the crop's mean), a sample is
augmented the same in any batch, and resumed runs stay exact (`tests/train/test_data.py`,
`tests/train/test_loop.py`). On a CPU-only run the arithmetic moves from the loader workers into the
step (figure 5 gives its cost per crop on this CPU); on a GPU it runs on the device next to the model,
which a GPU run of figure 5 measures. {t1}
"""


HISTORY = RESULTS / "history" / "amd-epyc-2c-2026-11-22-before-fixes.json"
HISTORY_T1 = RESULTS / "history" / "amd-epyc-2c-2026-11-22-before-T1.json"


def findings(cpu: dict | None) -> str:
    before = json.loads(HISTORY.read_text()) if HISTORY.exists() else None
    w1 = l2 = "see the table above"
    rows = []
    if before:
        lo0, wr0, ex0 = fig(before, "loader"), fig(before, "write"), fig(before, "extraction")
        lo1 = fig(cpu, "loader") if cpu else None
        wr1 = fig(cpu, "write") if cpu else None
        ex1 = fig(cpu, "extraction") if cpu else None
        # W1 and D1's "after" is the run right after they were applied (later changes moved these figures again)
        applied = json.loads(HISTORY_T1.read_text()) if HISTORY_T1.exists() else cpu
        wr_w1, ex_w1 = fig(applied, "write"), fig(applied, "extraction")
        for w in (13, 1):
            e0 = lo0[f"layers_{w}"]["efficiency"]
            rows.append([f"L2: crops/s from the store / memmap, {w} layer{'s' if w > 1 else ''}", f(e0["store"]), f(e0["proposed"]),
                         f(lo1[f"layers_{w}"]["efficiency"]["store"]) if lo1 else "–"])
        wt0 = wr0["write_track"]
        rows.append([f"W1: `write_track` ms per {f(wt0['track_seconds'], 0)} s track (13 layers float16)", f(wt0["shipped"]["ms_per_track"], 1),
                     f(wt0["proposed"]["ms_per_track"], 1), f(_wt(wr_w1["write_track"])["ms_per_track"], 1) if wr_w1 else "–"])
        v0 = ex0["ceiling"]["variants"]
        both = v0.get("stub-model+write-empty-chunks+mono-no-copy")
        after = (ex_w1 or {}).get("ceiling", {}).get("variants", {}).get("stub-model")
        rows.append(["W1 + D1: pipeline ceiling, best steady audio s/s (model stubbed)", f(v0["stub-model"]["best"]["steady_throughput"]),
                     f(both["best"]["steady_throughput"]) if both else "–", f(after["best"]["steady_throughput"]) if after else "–"])
        rows.append(["W1 + D1: pipeline ceiling, CPU ms per audio s", ", ".join(f(x, 1) for x in v0["stub-model"]["cpu_ms_per_audio_s"]),
                     ", ".join(f(x, 1) for x in both["cpu_ms_per_audio_s"]) if both else "–",
                     ", ".join(f(x, 1) for x in after["cpu_ms_per_audio_s"]) if after else "–"])
        l2 = (f"13 layers {f(lo0['layers_13']['efficiency']['store'])} → {f(lo0['layers_13']['efficiency']['proposed'])} of the memmap, "
              f"1 layer {f(lo0['layers_1']['efficiency']['store'])} → {f(lo0['layers_1']['efficiency']['proposed'])}, side by side")
        w1 = (f"{f(wt0['shipped']['ms_per_track'], 1)} → {f(wt0['proposed']['ms_per_track'], 1)} ms per {f(wt0['track_seconds'], 0)} s track, "
              f"{f(wt0['speedup'])}x, side by side")
    w2 = ""
    wt1 = (wr1 or {}).get("write_track", {})
    variants1 = (ex1 or {}).get("ceiling", {}).get("variants", {})
    if "zarr_writer" in wt1:
        rows.append([f"W2: `write_track` ms per {f(wt1['track_seconds'], 0)} s track (13 layers float16)",
                     f(wt1["zarr_writer"]["ms_per_track"], 1), "–", f(wt1["shipped"]["ms_per_track"], 1)])
        w2 = (f"Measured side by side: {f(wt1['zarr_writer']['ms_per_track'], 1)} → {f(wt1['shipped']['ms_per_track'], 1)} ms per track "
              f"({f(wt1['speedup'])}x).")
    old_name = "stub-model+zarr-writer+serial-io"
    if old_name in variants1 and "stub-model" in variants1:
        b0, b1 = variants1[old_name], variants1["stub-model"]
        rows.append(["W2 + IO1: pipeline ceiling, best steady audio s/s (model stubbed)", f(b0["best"]["steady_throughput"]), "–",
                     f(b1["best"]["steady_throughput"])])
        rows.append(["W2 + IO1: pipeline ceiling, CPU ms per audio s", ", ".join(f(x, 1) for x in b0["cpu_ms_per_audio_s"]), "–",
                     ", ".join(f(x, 1) for x in b1["cpu_ms_per_audio_s"])])
    t1 = ""
    tr0 = fig(json.loads(HISTORY_T1.read_text()), "training") if HISTORY_T1.exists() else None
    tr1 = fig(cpu, "training") if cpu else None
    if tr0 and tr1 and "apply_ms_per_crop" in tr1.get("loader_rate", {}):
        r0, r1 = tr0["loader_rate"], tr1["loader_rate"]
        rows.append(["T1: crops/s one loader worker produces (default augmentation)", f(r0["augment"], 0), "–", f(r1["augment"], 0)])
        fd = tr1.get("feed_rate") or {}
        if "threads" in fd and "per_item" in fd and "2" in fd["per_item"]:
            rows.append(["IO2: crops/s delivered into the training loop (before: 2 DataLoader workers, per-item batches; after: 2 reading threads)",
                         f(fd["per_item"]["2"], 0), "–", f(fd["threads"].get("2", max(fd["threads"].values())), 0)])
        t1 = (f"Measured: one worker {f(r0['augment'], 0)} → {f(r1['augment'], 0)} crops/s (`{HISTORY_T1.relative_to(REPO)}` "
              "holds the run before).")
    table_text = table(["what", "before", "side by side", "after"], rows) if rows else "_The before-fixes run is not in benchmarks/results/history/._"
    return FINDINGS.format(w1=w1, l2=l2, t1=t1, w2=w2, before_after=table_text,
                           history=HISTORY.relative_to(REPO) if HISTORY.exists() else "benchmarks/results/history/")


GPU_MISSING = """\
**GPU: not measured yet (no GPU machine was lent to the sessions that wrote this).** Nothing below is a
guess at GPU numbers. On a machine with CUDA, the same command measures every figure there
(`--device auto` picks CUDA; sizes grow to a GPU's pace: 256 clips for extraction, batch 48 for
training) and this document then shows a GPU column next to the CPU one:

```bash
make bench                                                        # = scripts/dev.sh bench: everything, ~15-30 min
python -m benchmarks.run --device cuda --only extraction,batching  # figures 1-2
python -m benchmarks.run --device cuda --only training,memory      # figures 5-6 (paper preset, batch 48)
python -m benchmarks.run --doc-only                                # rebuild this page from benchmarks/results/
```

**On a lent GPU machine without network** (this workplace's `device` tool: Python 3.12 with its own
torch, no package index, 10 minutes a command): build the kit here once, `scripts/gpu-kit.sh`
(`.gpu-kit/`: the packages of `scripts/gpu-kit.txt` that machine lacks, installed for 3.12 and
xz-packed, plus the benchmark's music; ~57 MB), then run each command there through
`bash scripts/gpu-run.sh COMMAND` with `.gpu-kit` carried. It unpacks the kit, installs this checkout
editable, runs the command and copies new `benchmarks/results/*.json` to `$OUT`; copy them back into
`benchmarks/results/` here before the next command (a result file merges the figures of several
runs) and finish with `--doc-only`. One figure group per command keeps each inside the limit:
`--quick` sizes first (`--only extraction,batching`, then `write,loader`, then `training,memory`), and
`python3 -m pytest -m gpu tests/extract/test_gpu.py` for the CUDA tests.

What to look at there: figure 1's efficiency next to the pipeline ceiling measured on that machine's
CPUs (whenever the bare GPU forward is faster than the ceiling, the ceiling bounds the efficiency; the
ceiling runs measure the I/O pool and W2 against the code before them, side by side), figure 2's
batching speedup, and figure 5's in-memory / real-loader step ratio (target ≥ 0.95) with the
loader's crops per second per worker (T1).
"""


def summary(cpu: dict | None, gpu: dict | None) -> str:
    def col(res, name, fn):
        if res is None:
            return "not measured (no GPU in this session)" if res is gpu else "–"
        figure = fig(res, name)
        return fn(figure) if figure else "not measured"

    def extraction(x):
        u = x.get("utilisation")
        mfu = f"; MFU {f(100 * u['steady_mfu'], 0)} %, {f(u['audio_hours_per_device_minute']['steady'], 3)} audio h per device-minute" if u else ""
        return f"{f(x['efficiency'])} end to end, {f(x['steady_efficiency'])} steady ({met(x['steady_efficiency'], x['target'])}){mfu}"

    def batching(x):
        return f"{f(x['speedup'])}x"

    def write(x):
        base = next(o for o in x["options"] if o["layers"] == 13 and o["dtype"] == "float16" and o["codec"] == "none")
        return (f"{f(base['bytes_per_audio_s'] / 1e3, 0)} kB per audio s; store writes {f(base['durable_MBps'], 0)} MB/s = "
                f"{f(base['vs_disk'])} of the disk's {f(x['disk']['MBps'], 0)} MB/s")

    def loader(x):
        e13, e1 = x["layers_13"]["efficiency"]["store"], x["layers_1"]["efficiency"]["store"]
        text = f"{f(e13)} (13 layers), {f(e1)} (1 layer): {met(min(e13, e1), x['target'])}; amplification 1.0"
        return text

    def training(x):
        gpu_part = (f"; loader {f(x['loader_efficiency'])} ({met(x['loader_efficiency'], x['target_gpu_loader'])})" if x["device"] == "cuda"
                    else f"; in-memory/loader {f(x['loader_efficiency'])} (GPU target, n/a on CPU)")
        return f"store {f(x['speedup_store_vs_on_the_fly'])}x faster than on the fly" + gpu_part

    def memory(x):
        return (f"extraction {f(x['extraction_growth'])}x ({flat(x['extraction_growth'])}), training {f(x['training_growth'])}x "
                f"({flat(x['training_growth'])}) for {x['extraction'][-1]['clips'] // x['extraction'][0]['clips']}x / "
                f"{x['training'][-1]['tracks'] // x['training'][0]['tracks']}x the data")

    rows = [
        ["1. extraction efficiency (end to end / bare forward)", "≥ 0.9", col(cpu, "extraction", extraction), col(gpu, "extraction", extraction)],
        ["2. batching gain (batched / one track at a time)", "report", col(cpu, "batching", batching), col(gpu, "batching", batching)],
        ["3. write limit (13 layers float16, codec none)", "report", col(cpu, "write", write), col(gpu, "write", write)],
        ["4. loader efficiency (store / memmap crops/s)", "≥ 0.7", col(cpu, "loader", loader), col(gpu, "loader", loader)],
        ["5. training (epoch: on the fly / store; step: in memory / loader)", "report; ≥ 0.95 on GPU", col(cpu, "training", training),
         col(gpu, "training", training)],
        ["6. memory growth (peak anonymous memory, large / small dataset)", "flat (≤ 1.25x for 4x the data)", col(cpu, "memory", memory), col(gpu, "memory", memory)],
    ]
    return table(["figure", "target", "CPU (this machine)", "GPU"], rows)


INTRO = """\
# Performance

Measured by `benchmarks/` on the machine described below, with one command:

```bash
make bench                              # = scripts/dev.sh bench = python -m benchmarks.run
python -m benchmarks.run --quick        # a few minutes: checks the machinery, numbers are rougher
python -m benchmarks.run --only loader  # one figure (extraction, batching, write, loader, training, memory)
python -m benchmarks.run --doc-only     # rebuild this page from benchmarks/results/*.json
```

Every number comes from `benchmarks/results/<machine>-<date>.json`; this page is generated from those
files (`benchmarks/report.py`) and is overwritten by the next run. Benchmarks are not tests: no timing
is asserted anywhere in the test suite.

**Method.** Each ratio is measured within one run, its two sides side by side: WavLM-heavy
measurements alternate (bare, end to end, bare, end to end, ...) and keep the best of each side, so a
burst of load elsewhere on a shared machine hits one round, not one side. Every configuration whose
timing or memory matters runs in a fresh Python process (`benchmarks/_child.py`), sampled for memory
by the parent. The CPU share each child got is recorded: on a machine shared with other jobs, absolute
numbers are pessimistic, ratios much less so.

**Model.** No WavLM weights can be downloaded where this runs, and throughput does not depend on weight
values: `transformers.WavLMConfig()`'s defaults are WavLM-base's architecture (12 transformer layers,
768 wide, the same convolutional front end), so the benchmark builds that model with random weights
(seed 0), saves it with `save_pretrained` into `~/.cache/mrnet/bench/wavlm-base-random` and passes that
directory as `--model`. Features computed with it have WavLM-base's shapes and costs, not its values.

**Audio.** Real music, fetched by the benchmark itself: Debian's `asc-music` package (the Advanced
Strategic Command soundtrack, MP3) via `apt-get download` + `dpkg -x` into `~/.cache/mrnet/bench/`,
cut into 30 s clips and written as 44.1 kHz stereo MP3 (libsndfile's LAME encoder), laid out as a
`folder` dataset with one "genre" per song. Without apt, generated music is used and the results say
which.
"""


def write_doc() -> Path:
    DOC.write_text(render(latest("cpu"), latest("cuda")))
    return DOC


def render(cpu_pick: tuple[Path, dict] | None, gpu_pick: tuple[Path, dict] | None, img: Path = IMG) -> str:
    """docs/performance.md from the chosen CPU and GPU result files (plots go to ``img``)."""
    cpu = cpu_pick[1] if cpu_pick else None
    gpu = gpu_pick[1] if gpu_pick else None
    parts = [INTRO, "## Summary", "", summary(cpu, gpu), ""]
    for label, pick, kind in (("CPU", cpu_pick, "cpu"), ("GPU", gpu_pick, "gpu")):
        if pick is None:
            if kind == "gpu":
                parts += ["## GPU", "", GPU_MISSING]
            else:
                parts += ["## CPU", "", "_No CPU results yet: run `make bench`._", ""]
            continue
        path, res = pick
        plots = _plots(res, kind, img)
        parts += [
            f"## {label}: the machine", "", machine_section(path, res), "",
            f"### 1. Extraction efficiency ({label})", "", extraction_section(res, plots), "",
            f"### 2. Batching gain ({label})", "", batching_section(res), "",
            f"### 3. The write limit ({label})", "", write_section(res), "",
            f"### 4. Loader efficiency ({label})", "", loader_section(res, plots), "",
            f"### 5. Training: store against WavLM on the fly ({label})", "", training_section(res), "",
            f"### 6. Memory as the dataset grows ({label})", "", memory_section(res), "",
        ]
    parts += ["## Bottlenecks found, fixes and proposals", "", findings(cpu), ""]
    return "\n".join(parts).rstrip() + "\n"
