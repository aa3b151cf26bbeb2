"""docs/performance.md is generated from benchmarks/results; the generator must render what a run writes.

The GPU half has never run on a GPU in CI, so a GPU result file is simulated from the CPU one (device
and machine switched to CUDA) to exercise every GPU branch of the report before a GPU session needs it.
"""

from __future__ import annotations

import copy
import json

import pytest

from benchmarks import report
from benchmarks.common import REPO


@pytest.fixture(scope="module")
def cpu_pick():
    pick = report.latest("cpu")
    if pick is None:
        pytest.skip("no CPU benchmark results committed")
    return pick


def as_gpu(res: dict) -> dict:
    gpu = copy.deepcopy(res)
    gpu["device"] = "cuda"
    gpu["machine"]["gpu"] = {"name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.2, "count": 1, "cuda": "13.0"}
    figures = gpu["figures"]
    for part in ("bare", "end_to_end"):
        figures["extraction"][part]["device"] = "cuda"
        figures["extraction"][part]["precision"] = "bfloat16"
    figures["extraction"]["utilisation"].update(device="cuda", device_name="NVIDIA H100 80GB HBM3", peak_matmul="8192^3 bfloat16")
    figures["batching"]["bare"] = {"batched": 40.0, "one_at_a_time": 10.0, "speedup": 4.0,
                                   "sweep": {"1": 10.0, "2": 19.0, "4": 30.0, "8": 40.0, "16": 44.0, "32": 45.0}}
    figures["training"]["device"] = "cuda"
    figures["training"]["loader_rate"].update(apply_device="cuda")
    return gpu


def test_the_committed_page_is_what_the_committed_results_render(cpu_pick, tmp_path):
    rendered = report.render(cpu_pick, report.latest("cuda"), img=tmp_path)
    assert rendered == (REPO / "docs" / "performance.md").read_text(), "rerun: python -m benchmarks.run --doc-only"


def test_a_gpu_result_fills_the_gpu_column_and_sections(cpu_pick, tmp_path):
    path, res = cpu_pick
    gpu_path = tmp_path / "nvidia-h100-2026-11-22.json"
    gpu_path.write_text(json.dumps(as_gpu(res)))
    page = report.render(cpu_pick, (gpu_path, as_gpu(res)), img=tmp_path / "img")
    assert "## GPU: the machine" in page and "### 5. Training: store against WavLM on the fly (GPU)" in page
    summary = page.split("## Summary", 1)[1].split("##", 1)[0]
    assert "not measured" not in summary
    assert "GPU-minute" in page and "target ≥ 0.95 on a GPU" in page
    assert "| 32 | 45 |" in page  # the batch-size sweep
    assert {"perf-extraction-gpu.png", "perf-loader-gpu.png"} <= {p.name for p in (tmp_path / "img").iterdir()}
