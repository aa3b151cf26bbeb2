"""The page's plots, drawn from one result file: extraction throughput and crop reads.

``draw(res, kind, img)`` writes ``perf-extraction-<kind>.png`` and ``perf-loader-<kind>.png`` under
``img`` for the figures the result holds, and returns their file names by figure.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.tables import fig

CEILING_LABELS = {"serial-io": "IO1", "zarr-writer": "W2"}  # variants of older results: the code before these fixes
LOADER_METHODS = {
    "memmap": "NumPy memmap",
    "store": "FeatureStore.read (fused, shipped)",
    "zarr": "Zarr chunk by chunk",
}


def draw(res: dict, kind: str, img: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    img.mkdir(parents=True, exist_ok=True)
    made = {}
    if fig(res, "extraction"):
        made["extraction"] = _extraction(res, kind, img / f"perf-extraction-{kind}.png")
    if fig(res, "loader"):
        made["loader"] = _loader(fig(res, "loader"), kind, img / f"perf-loader-{kind}.png")
    return made


def _throughputs(res: dict) -> list[tuple[str, float, str]]:
    """(label, audio s/s, colour) of every bar of the extraction plot."""
    ex, ba = fig(res, "extraction"), fig(res, "batching")
    bars = [
        (f"bare WavLM forward (batch {ex['settings']['batch_size']})", ex["bare"]["throughput"], "#4c72b0"),
        ("mrnet-extract end to end", ex["end_to_end"]["throughput"], "#55a868"),
    ]
    if ba:
        bars.append(("mrnet-extract, one track at a time", ba["one_at_a_time"]["throughput"], "#c44e52"))
    for name, v in ex.get("ceiling", {}).get("variants", {}).items():
        before = [CEILING_LABELS.get(part, part) for part in name.split("+") if part != "stub-model"]
        label = "pipeline ceiling, model stubbed" + (f" (before {' + '.join(before)})" if before else "")
        bars.append((label, v["best"]["steady_throughput"], "#8c8c8c"))
    return bars


def _extraction(res: dict, kind: str, path: Path) -> str:
    import matplotlib.pyplot as plt

    labels, values, colors = zip(*_throughputs(res))
    figure, ax = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.2))
    ax.barh(range(len(labels)), values, color=colors)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(left=min(1.0, min(values) / 2), right=max(values) * 3)
    ax.set_xlabel("audio seconds per second (log scale)")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3g}", va="center", fontsize=8)
    ax.set_title(f"Extraction throughput, {kind}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def _loader(lo: dict, kind: str, path: Path) -> str:
    import matplotlib.pyplot as plt

    methods = [m for m in LOADER_METHODS if m in lo["layers_13"]["crops_per_s"]]
    figure, ax = plt.subplots(figsize=(7.5, 3.4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        vals = [lo[f"layers_{w}"]["crops_per_s"][m] for w in (13, 1)]
        ax.bar([i + (j - (len(methods) - 1) / 2) * width for i in range(2)], vals, width, label=LOADER_METHODS[m])
    ax.set_xticks([0, 1], ["13 layers", "1 layer"])
    ax.set_yscale("log")
    ax.set_ylabel("random 6 s crops per second (log)")
    ax.set_title(f"Crop reads, warm page cache, one process, {kind}")
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name
