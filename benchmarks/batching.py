"""Figure 2, batching gain: the same extraction with batches of equal-length windows against one track
at a time (``--batch-size 1``: one forward per track, as the authors' code runs WavLM).

Same MP3 dataset, unit size, precision and dtype as figure 1; only the batch size differs. When
figure 1 ran in the same invocation its batched end-to-end runs are reused, otherwise they are
measured here, interleaved with the one-at-a-time runs. On a GPU the bare forward is also timed at
batch sizes 1 to 32 in one process (the model-only gain, and which ``--batch-size`` a GPU wants); on a
CPU that would cost several more full WavLM passes for a number the end-to-end comparison bounds.
"""

from __future__ import annotations

from benchmarks.common import Context, log
from benchmarks.data import mp3_dataset
from benchmarks.extraction import bare_run, best, e2e_run


def run(ctx: Context) -> dict:
    p = ctx.profile
    root, source = mp3_dataset(p.extract_clips, p.clip_seconds)
    reuse = ctx.shared.get("e2e_batched")
    batched = [reuse] if reuse else []
    single = []
    log(f"batching: batch {p.batch_size} against batch 1, {p.extract_clips} clips of {p.clip_seconds:g} s")
    for r in range(p.rounds):
        if not reuse:
            batched.append(e2e_run(ctx, root, p.batch_size, p.unit_size, "batched"))
            log(f"  round {r + 1}: batch {p.batch_size}: {batched[-1]['throughput']:.2f} audio-s/s")
        single.append(e2e_run(ctx, root, 1, p.unit_size, "single"))
        log(f"  round {r + 1}: batch 1: {single[-1]['throughput']:.2f} audio-s/s")
    b, s = best(batched), best(single)
    result = {
        "dataset": {"clips": p.extract_clips, "clip_seconds": p.clip_seconds, "source": source},
        "batch_size": p.batch_size,
        "batched": b,
        "one_at_a_time": s,
        "rounds": {"batched": [x["throughput"] for x in batched], "one_at_a_time": [x["throughput"] for x in single]},
        "batched_reused_from_extraction": bool(reuse),
        "speedup": b["throughput"] / s["throughput"],
        "steady_speedup": best(batched, "steady_throughput")["steady_throughput"]
        / best(single, "steady_throughput")["steady_throughput"],
    }
    if ctx.device == "cuda":  # the model alone, and which batch size a GPU wants (one process, decoded audio)
        bares = [bare_run(ctx, root, p.batch_size, save=False, sweep=list(GPU_SWEEP)) for _ in range(p.rounds)]
        sweep = {size: max(b["sweep"][str(size)] for b in bares) for size in GPU_SWEEP}
        result["bare"] = {
            "batched": sweep[p.batch_size],
            "one_at_a_time": sweep[1],
            "speedup": sweep[p.batch_size] / sweep[1],
            "sweep": {str(k): v for k, v in sweep.items()},
        }
        log("  bare forward by batch size: " + ", ".join(f"{k}: {v:.0f}" for k, v in sweep.items()) + " audio-s/s")
    return result


GPU_SWEEP = (1, 2, 4, 8, 16, 32)  # batch sizes of 40 s windows the GPU run times (bare forward, best of the rounds)
