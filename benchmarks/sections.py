"""The seven figure sections of a device: each picks its template blocks and fills them with a result's numbers.

Every function takes the page (``benchmarks.template.Page``) and the result file's data (extraction
also the device label, "CPU" or "GPU"; extraction and loader the file name of their plot); the words
are in ``benchmarks/performance.md.in``, the numbers and tables here.
"""

from __future__ import annotations

from benchmarks.tables import f, fig, flat, listed, met, option, table


def extraction(page, res: dict, label: str, plot: str | None) -> str:
    ex = fig(res, "extraction")
    if not ex:
        return page.fill("not-measured")
    b, e = ex["bare"], ex["end_to_end"]
    busy = e.get("busy_s", {})
    rows = [
        [
            "bare WavLM forward (decoded audio in memory)",
            f(b["throughput"]),
            f(b["forward_s"], 1),
            f"{b['calls']} forward calls, batch sizes {b['batch_sizes']}",
        ],
        [
            "`mrnet-extract` end to end (`pipeline.run`)",
            f(e["throughput"]),
            f(e["run_s"], 1),
            f"setup {f(e['setup_s'], 1)} s (scan, model load, store), then {f(e['work_s'], 1)} s of units",
        ],
        [
            "end to end, steady state (setup left out)",
            f(e["steady_throughput"]),
            f(e["work_s"], 1),
            f"inside the units: model {f(busy.get('model'), 1)} s, decode {f(busy.get('decode'), 2)} s, "
            f"write {f(busy.get('write'), 2)} s (summed over the 2 unit threads)",
        ],
    ]
    rounds, ds, st = ex["rounds"], ex["dataset"], ex["settings"]
    return page.fill(
        "extraction",
        clips=ds["clips"],
        clip_seconds=f"{ds['clip_seconds']:g}",
        source=ds["source"],
        format=ds["format"],
        batch_size=st["batch_size"],
        unit_size=st["unit_size"],
        precision=b["precision"],
        device=b["device"],
        rounds=st["rounds"],
        table=table(["", "audio s/s", "seconds", "notes"], rows),
        efficiency=f(ex["efficiency"]),
        steady_efficiency=f(ex["steady_efficiency"]),
        target=ex["target"],
        met=met(ex["steady_efficiency"], ex["target"]),
        rounds_bare=listed(rounds["bare"]),
        rounds_end_to_end=listed(rounds["end_to_end"]),
        share_bare=listed(rounds["cpu_share"]["bare"]),
        share_end_to_end=listed(rounds["cpu_share"]["end_to_end"]),
        decode_rate=f(b["decode_rate"]),
        utilisation=_utilisation(page, ex, label),
        cpu=_extraction_cpu(page, ex, busy),
        ceiling=_ceiling(page, ex),
        io_scaling=_io_scaling(page, ex),
        plot=page.fill("extraction-plot", file=plot) if plot else "",
    )


def _utilisation(page, ex: dict, label: str) -> str:
    u = ex.get("utilisation")
    if not u:
        return ""
    ops = u["flops_by_op"]
    share = lambda *names: f(100 * sum(ops.get(n, 0) for n in names) / sum(ops.values()), 0)  # noqa: E731
    hours = u["audio_hours_per_device_minute"]
    return page.fill(
        "extraction-utilisation",
        label=label,
        gflop=f(u["flops_per_audio_s"] / 1e9, 1),
        window=f(u["window_s"], 0),
        conv=share("aten.convolution"),
        linear=share("aten.addmm", "aten.mm"),
        attention=share("aten.bmm", "aten.baddbmm"),
        peak_matmul=u["peak_matmul"],
        device_name=u["device_name"],
        tflops=f(u["peak_flops"] / 1e12, 3),
        bare_mfu=f(100 * u["bare_mfu"], 1),
        steady_mfu=f(100 * u["steady_mfu"], 1),
        hours_steady=f(hours["steady"], 3),
        hours_bare=f(hours["bare"], 3),
    )


def _extraction_cpu(page, ex: dict, busy: dict) -> str:
    if ex["bare"]["device"] != "cpu":
        return ""
    io_share = 100 * ((busy.get("decode") or 0) + (busy.get("write") or 0)) / (busy.get("model") or 1)
    text = page.fill("extraction-cpu", io_share=f(io_share, 1))
    return text + ("\n\n" + page.fill("extraction-cpu-beats-bare") if ex["steady_efficiency"] > 1.0 else "")


def _ceiling(page, ex: dict) -> str:
    c = ex.get("ceiling")
    if not c:
        return ""
    rows = []
    for name, v in c["variants"].items():
        inside = v["best"]["busy_s"]
        rows.append(
            [
                name,
                f(v["best"]["steady_throughput"]),
                listed(v["rounds"]),
                listed(v["cpu_ms_per_audio_s"], 1),
                f"decode {f(inside.get('decode'), 1)} s, stitch {f(inside.get('model'), 1)} s, write {f(inside.get('write'), 1)} s",
            ]
        )
    head = [
        "variant",
        "best steady audio s/s",
        "rounds",
        "CPU ms per audio s",
        "inside the units (best round, both threads)",
    ]
    before = page.fill("ceiling-before-variants") if set(c["variants"]) - {"stub-model"} else ""
    return page.fill(
        "ceiling",
        clips=c["clips"],
        batch_size=c["batch_size"],
        unit_size=c["unit_size"],
        table=table(head, rows),
        before_variants=before,
    )


def _io_scaling(page, ex: dict) -> str:
    io = ex.get("io_scaling")
    if not io:
        return ""
    counts = list(io["decode"])
    one_d, one_w = io["decode"][counts[0]], io["write"][counts[0]]
    rows = [
        [n, f(io["decode"][n], 0), f(io["decode"][n] / one_d), f(io["write"][n], 0), f(io["write"][n] / one_w)]
        for n in counts
    ]
    return page.fill(
        "io-scaling",
        decode_audio_s=f(io["decode_audio_s"], 0),
        write_audio_s=f(io["write_audio_s"], 0),
        table=table(["threads", "decode audio s/s", "x one thread", "write audio s/s", "x one thread"], rows),
    )


def batching(page, res: dict) -> str:
    ba = fig(res, "batching")
    if not ba:
        return page.fill("not-measured")
    rows = [
        [
            f"batch {ba['batch_size']} (equal-length windows)",
            f(ba["batched"]["throughput"]),
            f(ba["batched"]["steady_throughput"]),
            listed(ba["rounds"]["batched"]),
        ],
        [
            "batch 1 (one track per forward, the authors' way)",
            f(ba["one_at_a_time"]["throughput"]),
            f(ba["one_at_a_time"]["steady_throughput"]),
            listed(ba["rounds"]["one_at_a_time"]),
        ],
    ]
    return page.fill(
        "batching",
        table=table(["", "audio s/s (end to end)", "steady state", "rounds"], rows),
        speedup=f(ba["speedup"]),
        steady_speedup=f(ba["steady_speedup"]),
        bare=_batching_bare(page, res, ba),
        cpu=page.fill("batching-cpu") if res.get("device") == "cpu" else "",
    )


def _batching_bare(page, res: dict, ba: dict) -> str:
    bare = ba.get("bare")
    if not bare:
        return ""
    sweep, u = bare.get("sweep"), (fig(res, "extraction") or {}).get("utilisation")
    rows = [
        [size, f(tp, 0), f(100 * tp * u["flops_per_audio_s"] / u["peak_flops"], 1) if u else "–", f(tp / 60, 3)]
        for size, tp in (sweep or {}).items()
    ]
    swept = (
        page.fill("batching-sweep", table=table(["batch", "audio s/s", "MFU %", "audio h per device-minute"], rows))
        if sweep
        else ""
    )
    return page.fill(
        "batching-bare",
        batched=f(bare["batched"]),
        one_at_a_time=f(bare["one_at_a_time"]),
        speedup=f(bare["speedup"]),
        sweep=swept,
    )


def write(page, res: dict) -> str:
    w = fig(res, "write")
    if not w:
        return page.fill("not-measured")
    rows = [
        [
            o["layers"],
            o["dtype"],
            o["codec"],
            f(o["bytes_per_audio_s"] / 1e3, 1),
            f(o["ratio"], 3),
            f(o["cache_MBps"], 0),
            f(o["durable_MBps"], 0),
            f(o["vs_disk"]),
            f(o["absorbs_audio_s_per_s"], 0),
        ]
        for o in sorted(w["options"], key=lambda o: (-o["layers"], o["dtype"], o["codec"]))
    ]
    head = [
        "layers",
        "dtype",
        "codec",
        "kB per audio s",
        "ratio",
        "MB/s to page cache",
        "MB/s durable",
        "on-disk MB/s vs disk",
        "audio s/s it absorbs",
    ]
    d, wt, lossy = w["disk"], w["write_track"], w["lossy"]
    base, zstd, blosc = (option(w, 13, "float16", codec) for codec in ("none", "zstd", "blosc"))
    shipped = wt.get("shipped", wt)  # results up to commit 03a1d36 hold the writer of then beside the shipped one
    before = (
        page.inline("write-track-before", before_ms=f(wt["zarr_writer"]["ms_per_track"], 1), speedup=f(wt["speedup"]))
        if "zarr_writer" in wt
        else ""
    )
    return page.fill(
        "write",
        tracks=w["features"]["tracks"],
        audio_s=f(w["features"]["audio_s"], 0),
        source=w["features"]["source"],
        disk_mb=d["MB"],
        disk_mbps=f(d["MBps"], 0),
        disk_after_mbps=f(w["disk_after"]["MBps"], 0),
        table=table(head, rows),
        base_kb=f(base["bytes_per_audio_s"] / 1e3, 0),
        features_kb=f(w["bytes_13_float16"] / 1e3, 1),
        base_mbps=f(base["durable_MBps"], 0),
        base_vs_disk=f(base["vs_disk"]),
        base_absorbs=f(base["absorbs_audio_s_per_s"], 0),
        limit=page.inline("write-disk-limit" if base["vs_disk"] >= 0.7 else "write-cpu-limit"),
        zstd_ratio=f(zstd["ratio"], 3),
        blosc_ratio=f(blosc["ratio"], 3),
        zstd_mbps=f(zstd["durable_MBps"], 0),
        blosc_mbps=f(blosc["durable_MBps"], 0),
        rel_rms=f"{lossy['float16_rel_rms_error']:.1e}",
        max_abs=f"{lossy['float16_max_abs_error']:.1e}",
        max_value=f(lossy["max_abs_value"], 1),
        track_seconds=f(wt["track_seconds"], 0),
        track_ms=f(shipped["ms_per_track"], 1),
        track_rate=f(shipped["audio_s_per_s"], 0),
        track_before=before,
    )


def loader(page, res: dict, plot: str | None) -> str:
    lo = fig(res, "loader")
    if not lo:
        return page.fill("not-measured")
    rows = []
    for w in (13, 1):
        r = lo[f"layers_{w}"]
        rows.append(
            [
                f"{w} layer{'s' if w > 1 else ''}",
                f(r["crops_per_s"]["memmap"], 0),
                f(r["crops_per_s"]["store"], 0),
                f"**{f(r['efficiency']['store'])}** ({met(r['efficiency']['store'], lo['target'])})",
                f(r["crops_per_s"]["zarr"], 0),
                f(r["efficiency"]["zarr"], 3),
                f(r["read"]["zarr"]["amplification"]),
                f(r["read"]["zarr"]["requests_per_crop"], 0),
            ]
        )
    head = [
        "crop",
        "memmap crops/s",
        "store crops/s",
        "store / memmap (target ≥ 0.7)",
        "Zarr path crops/s",
        "Zarr / memmap",
        "Zarr read amplification",
        "Zarr requests per crop",
    ]
    l13, l1 = lo["layers_13"], lo["layers_1"]
    return page.fill(
        "loader",
        tracks=lo["tracks"],
        chunk_frames=l13["chunk_frames"],
        crops_13=l13["crops"],
        crops_1=l1["crops"],
        crop_frames=lo["crop_frames"],
        repeat=lo["repeat"],
        table=table(head, rows),
        zarr_amplification=f(l13["read"]["zarr"]["amplification"]),
        zarr_slower_13=f(1 / l13["efficiency"]["zarr"], 0),
        zarr_slower_1=f(1 / l1["efficiency"]["zarr"], 0),
        plot=page.fill("loader-plot", file=plot) if plot else "",
    )


def training(page, res: dict) -> str:
    t = fig(res, "training")
    if not t:
        return page.fill("not-measured")
    runs, step, epoch, rounds = t["runs"], t["median_step_s"], t["epoch_s"], t["rounds_median_step_s"]
    names = {
        "store": "store (real loop and loader, `mrnet.train.loop.train`)",
        "memory": "batches already in memory",
        "on_the_fly": "WavLM on the fly from decoded audio (the authors' way)",
    }
    rows = [
        [title, f(step[k]), f(epoch[k], 1), listed(rounds[k]), f(runs[k]["memory"]["peak_pss_mb"], 0)]
        for k, title in names.items()
    ]
    gpu = t["device"] == "cuda"
    return page.fill(
        "training",
        model=t["model"],
        batch=t["batch"],
        train_tracks=t["train_tracks"],
        steps_per_epoch=t["steps_per_epoch"],
        timed_steps=t["timed_steps"],
        warmup_steps=t["warmup_steps"],
        device=t["device"],
        loader=runs["store"]["loader"],
        table=table(["", "median step s", "epoch s (steps x median)", "round medians", "peak PSS MB"], rows),
        speedup=f(t["speedup_store_vs_on_the_fly"]),
        wavlm_share=f(100 * t["wavlm_share_on_the_fly"], 0),
        reading=_reading(page, t),
        feed=_feed(page, t),
        target=page.fill(
            "training-target-gpu" if gpu else "training-target-cpu",
            efficiency=f(t["loader_efficiency"]),
            target=t["target_gpu_loader"],
            met=met(t["loader_efficiency"], t["target_gpu_loader"]),
        ),
    )


def _reading(page, t: dict) -> str:
    r = t.get("loader_rate")
    if not r or "apply_ms_per_crop" not in r:
        return ""
    return page.fill(
        "training-reading",
        augment=f(r["augment"], 0),
        no_augment=f(r["no_augment"], 0),
        apply_ms=f(r["apply_ms_per_crop"], 1),
        apply_device=r["apply_device"],
        apply_threads=r["apply_threads"],
    )


FEED_WAYS = {
    "threads": "reading threads (the default)",
    "workers": "DataLoader worker processes (`--num-workers`)",
    "per_item": "DataLoader worker processes, per-item batches (the code before IO2)",
}


def _feed(page, t: dict) -> str:
    fd = t.get("feed_rate")
    if not fd or "threads" not in fd:
        return ""
    rows = [[title, n, f(rate, 0)] for kind, title in FEED_WAYS.items() for n, rate in fd.get(kind, {}).items()]
    best = max(fd["threads"].values())
    return page.fill(
        "training-feed",
        batch=fd["batch"],
        auto_threads=fd["auto_threads"],
        table=table(["way of loading", "threads or workers", "crops/s into the loop"], rows),
        steps_per_s=f(best / 48, 1),
        step_ms=f(48e3 / best, 0),
    )


def memory(page, res: dict) -> str:
    m = fig(res, "memory")
    if not m:
        return page.fill("not-measured")
    rows = []
    for x in m["extraction"]:
        rows.append(
            [
                f"extraction: {x['clips']} clips x {x['clip_seconds']:g} s ({x['units']} units of {x['unit_size']})",
                *_peaks(x),
            ]
        )
    for x in m["training"]:
        rows.append(
            [
                f"training 1 epoch ({x['preset']}): {x['tracks']} tracks x {x.get('track_seconds', 30):g} s ({f(x['store_gb'], 2)} GB)",
                *_peaks(x),
            ]
        )
    head = [
        "run",
        "main process peak RSS MB (VmHWM, exact)",
        "process tree peak RSS MB",
        "peak PSS MB",
        "peak anonymous PSS MB",
    ]
    ex_growth, tr_growth = m.get("extraction_growth"), m.get("training_growth")
    return page.fill(
        "memory",
        table=table(head, rows),
        extraction_ratio=f"{m['extraction'][-1]['clips'] / m['extraction'][0]['clips']:g}",
        extraction_growth=f(ex_growth),
        training_ratio=f"{m['training'][-1]['tracks'] / m['training'][0]['tracks']:g}",
        training_growth=f(tr_growth),
        extraction_flat=flat(ex_growth),
        training_flat=flat(tr_growth),
    )


def _peaks(x: dict) -> list[str]:
    mm = x["memory"]
    return [f(mm["maxrss_mb"], 0), f(mm["peak_rss_mb"], 0), f(mm["peak_pss_mb"], 0), f(mm["peak_pss_anon_mb"], 0)]


def steps(page, res: dict) -> str:
    st = fig(res, "steps")
    if not st:
        return page.fill("not-measured")
    rows = [
        [
            f"`{r['label']}`",
            f"`{r['preset']}`",
            f"`{r['feature']}` {r['frames']} x {r['dim']} ({f(r['seconds'], 2)} s)",
            r["batch"],
            f"{r['parameters']:,}",
            f(r["median_step_s"], 2),
            f"{f(min(r['step_s']), 2)}-{f(max(r['step_s']), 2)}",
            f(r["ms_per_example"], 1),
            f"{f(r['vs_mrnet_small'], 1)}x",
            f(r["peak_pss_mb"], 0),
        ]
        for r in st["rows"]
    ]
    head = [
        "model",
        "recipe (`--preset`)",
        "input per example (frames x values)",
        "batch",
        "parameters",
        "median step s",
        "timed steps s",
        "ms per example",
        "vs MRNet small",
        "peak PSS MB",
    ]
    when = st.get("_run", {})
    return page.fill(
        "steps",
        table=table(head, rows),
        warmup=st["warmup_steps"],
        timed=st["timed_steps"],
        classes=st["classes"],
        threads=st["rows"][0]["threads"],
        when=when.get("when", "?"),
        commit=when.get("git", {}).get("commit", "?"),
        load_before=listed(when.get("load_before", [])),
        load_after=listed(when.get("load_after", [])),
    )
