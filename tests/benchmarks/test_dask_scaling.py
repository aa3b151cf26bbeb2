"""Extraction on several Dask workers (``python -m benchmarks.dask_scaling``): its arithmetic, its page section,
and a whole run at a tiny size through the real extraction cluster path."""

from __future__ import annotations

import doctest
import json

import pytest
from benchmarks import dask_report, dask_scaling, report
from benchmarks.template import Page


def test_dask_scaling_examples():
    assert doctest.testmod(dask_scaling).failed == 0


def _page() -> Page:
    return Page.load(report.TEMPLATE, common={k: "x" for k in Page.load(report.TEMPLATE).identifiers()})


def _run(unit_wall_s: float, tracks_per_s: float = 10.0) -> dict:
    return {"unit_wall_s": unit_wall_s, "tracks_per_s": tracks_per_s, "first_unit_s": 5.0, "unit_function_s": 0.5}


def test_the_section_derives_the_unit_size_from_the_fixed_cost_per_unit(tmp_path):
    # threads: 10 ms a track, nothing per unit; Dask: the same per track and 100 ms more per unit
    sweep = {str(u): {"threads": [_run(0.01 * u)], "dask": [_run(0.1 + 0.01 * u)]} for u in (4, 16, 64)}
    res = {
        "machine": {"usable_cpus": 2},
        "command": "python -m benchmarks.dask_scaling",
        "started": "2026-12-07 20:00 UTC",
        "tracks": 10000,
        "unit": 16,
        "sweep_tracks": 1000,
        "sweep": sweep,
        "workers": {"1": _run(0.2, 40.0), "2": _run(0.2, 60.0), "4": {"error": "RuntimeError: boom"}},
        "load": {"mean": 3.0, "max": 4.0},
    }
    text = " ".join(dask_report.section(_page(), (tmp_path / "r.json", res)).split())  # lines joined
    assert "Dask's intercept is **100 ms** above the threads'" in text
    assert "**191 tracks per unit** for these 1 s tracks" in text  # 0.1 * 0.95 / (0.05 * 0.01) = 190
    assert "| 2 | 60.0 | 1.50 |" in text and "| 4 | failed |" in text
    assert "from 7 tracks per unit: the default of 16 is enough" in text  # 30 s tracks: 0.3 s each
    assert dask_report.section(_page(), None).startswith("### Extraction on several workers")


@pytest.mark.slow
def test_a_tiny_run_extracts_on_threads_and_on_a_dask_worker(tmp_path):
    out = tmp_path / "r.json"
    argv = ["--tracks", "24", "--workers", "1", "--sweep-tracks", "16", "--unit-sizes", "4,8"]
    assert dask_scaling.main([*argv, "--work", str(tmp_path / "w"), "--results", str(out)]) == 0
    res = json.loads(out.read_text())
    runs = [r for size in res["sweep"].values() for kind in ("threads", "dask") for r in size[kind]]
    assert len(runs) == 4 and all("error" not in r and r["tracks"] == 16 for r in runs), runs
    assert res["sweep"]["4"]["dask"][0]["units"] == 4 and res["sweep"]["8"]["threads"][0]["units"] == 2
    assert res["workers"]["1"]["tracks"] == 24 and res["workers"]["1"]["tracks_per_s"] > 0
    assert "### Extraction on several workers" in dask_report.section(_page(), (out, res))
