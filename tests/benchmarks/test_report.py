"""docs/performance.md is generated from benchmarks/results; the generator must render what a run writes.

The GPU half has never run on a GPU in CI, so a GPU result file is simulated from the CPU one (device
and machine switched to CUDA) to exercise every GPU branch of the report before a GPU session needs it.
Likewise a result in today's format (no code-before-a-fix variants) is simulated from the committed
one, whose before-figures the page then takes from the recorded results.
"""

from __future__ import annotations

import copy
import doctest
import json
import re

import pytest
from benchmarks import history, report, template
from benchmarks.common import REPO
from benchmarks.template import Page


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
    figures["extraction"]["utilisation"].update(
        device="cuda", device_name="NVIDIA H100 80GB HBM3", peak_matmul="8192^3 bfloat16"
    )
    figures["batching"]["bare"] = {
        "batched": 40.0,
        "one_at_a_time": 10.0,
        "speedup": 4.0,
        "sweep": {"1": 10.0, "2": 19.0, "4": 30.0, "8": 40.0, "16": 44.0, "32": 45.0},
    }
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


def as_current_format(res: dict) -> dict:
    """The result as the benchmarks write it now: no code-before-a-fix variants beside the shipped code."""
    new = copy.deepcopy(res)
    figures = new["figures"]
    ceiling = figures["extraction"]["ceiling"]
    ceiling["variants"] = {"stub-model": ceiling["variants"]["stub-model"]}
    track = figures["write"]["write_track"]
    figures["write"]["write_track"] = {**track["shipped"], "track_seconds": track["track_seconds"]}
    del figures["training"]["feed_rate"]["per_item"]
    return new


def placeholders_left(page: str) -> list[str]:
    names = Page.load(report.TEMPLATE).identifiers()
    return sorted(n for n in names if re.search(rf"\$(\{{{n}\}}|{n}\b)", page))


def test_no_placeholder_is_left_unfilled(cpu_pick, tmp_path):
    path, res = cpu_pick
    for gpu in (None, (tmp_path / "gpu.json", as_gpu(res))):
        page = report.render(cpu_pick, gpu, img=tmp_path / "img")
        assert placeholders_left(page) == []
        assert "$" not in page.replace("$OUT", "")  # the one dollar sign the page shows on purpose


def test_a_placeholder_without_a_value_fails_loudly(cpu_pick, tmp_path):
    text = report.TEMPLATE.read_text().replace("<!-- block: loader -->\n", "<!-- block: loader -->\n$no_such_value\n")
    template = tmp_path / "performance.md.in"
    template.write_text(text)
    with pytest.raises(KeyError, match=r"block 'loader' has no value for \$no_such_value"):
        report.render(cpu_pick, None, img=tmp_path / "img", template=template)


def test_every_recorded_figure_is_found(cpu_pick):
    values = history.recorded(cpu_pick)
    assert [name for name, value in values.items() if value == history.MISSING] == []
    assert values["l2_13_before"] == "0.72" and values["w2_track_before"] == "117"  # the recorded before-figures


def test_a_result_without_before_variants_renders(cpu_pick, tmp_path):
    path, res = cpu_pick
    current = (tmp_path / "amd-epyc-2c-2026-12-01.json", as_current_format(res))
    page = report.render(current, None, img=tmp_path / "img")
    assert placeholders_left(page) == []
    assert "`serial-io`" not in page and "the code before IO2" not in page  # no live before-figures any more
    w2 = next(line for line in page.splitlines() if line.startswith("| W2: `write_track`"))
    assert (
        w2 == "| W2: `write_track` ms per 30 s track (13 layers float16) | 117 | – | 36.5 |"
    )  # recorded before, current after


def test_template_examples():
    assert doctest.testmod(template).failed == 0


def test_a_results_or_docs_change_does_not_mark_a_measurement_uncommitted(tmp_path, monkeypatch):
    """Rerunning into a result file dirties the checkout; only a change to code should say "+ uncommitted"."""
    import subprocess

    from benchmarks import common, run

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    for rel in ("benchmarks/results/x.json", "docs/performance.md", "store/reader.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("0\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(common, "REPO", tmp_path)
    (tmp_path / "benchmarks/results/x.json").write_text("1\n")
    (tmp_path / "docs/performance.md").write_text("1\n")
    assert run._git()["dirty"] is False
    (tmp_path / "store/reader.py").write_text("1\n")
    assert run._git()["dirty"] is True
