"""The growth benchmark (``python -m benchmarks.growth``): its exponents, its page section, and the whole run at tiny sizes."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from benchmarks import growth, growth_fit, growth_report, report
from benchmarks.template import Page


def test_growth_fit_examples():
    assert doctest.testmod(growth_fit).failed == 0


def _run(seconds, memory=100.0):
    return {"seconds": seconds, "maxrss_mb": memory, "peak_rss_mb": memory, "op_peak_mb": memory}


def _result(load_max: float, first_batch_top: float) -> dict:
    sizes = [1000, 10000, 106574]
    ops = {
        "verify": {"n": sizes, "runs": [_run(0.1 * n / 1000) for n in sizes]},  # linear
        "ls": {"n": sizes, "runs": [_run(1e-6 * (n / 10) ** 2) for n in sizes]},  # quadratic
        "first-batch": {"n": sizes, "runs": [_run(10.0), _run(12.0), _run(first_batch_top)]},
        "stats": {"n": sizes, "runs": [_run(1.0), {"error": "RuntimeError: boom\nlast line"}, _run(100.0)]},
    }
    manifest = {"sizes": [1000, 10000], "ops": {"folds": {"n": [1000, 10000], "runs": [_run(0.01, 1), _run(0.1, 10)]}}}
    remote = {
        "tracks": 1000,
        "delay_s": 0.02,
        "store_bytes": 10**7,
        "server": {"direct": {"requests_per_s": 300.0}, "proxy": {"requests_per_s": 200.0, "round_trip_s": 0.025}},
        "train": {
            "local": {"rate": 100.0},
            "s3": {"rate": 90.0, "reading": {"threads": 25, "concurrent": 2, "depth": 3}},
            "ratio": 0.9,
            "first_epoch_ratio": 0.5,
        },
        "verify": {"local": {"rate": 100.0}, "s3": {"rate": 10.0}, "ratio": 0.1},
    }
    return {
        "machine": {"cpu": "a CPU", "usable_cpus": 2},
        "git": {"commit": "abc1234", "dirty": False},
        "date": "2026-12-07",
        "started": "2026-12-07 17:00 UTC",
        "command": "python -m benchmarks.growth",
        "full": True,
        "load": {"mean": load_max, "max": load_max, "samples": 3, "contended": load_max > growth.CONTENDED},
        "parts": {
            "stores": {"sizes": sizes, "ops": ops, "not_measured": {"predict": "no store input"}},
            "manifest": manifest,
            "remote": remote,
        },
    }


def _section(res: dict, tmp_path: Path) -> str:
    page = Page.load(report.TEMPLATE, common={k: "x" for k in Page.load(report.TEMPLATE).identifiers()})
    return growth_report.section(page, (tmp_path / "r.json", res), tmp_path / "img")


def test_the_section_judges_each_operation_by_its_top_slope(tmp_path):
    text = _section(_result(load_max=1.0, first_batch_top=20.0), tmp_path)
    rows = {
        line.split(" | ")[0].lstrip("| "): line
        for line in text.splitlines()
        if line.startswith("| `") or line.startswith("| one")
    }
    assert rows["`mrnet-store verify`"].endswith("| yes |")
    assert rows["`mrnet-store ls`"].endswith("| **no** |")
    assert "failed" in rows["`mrnet-store stats`"] and "Failed: `mrnet-store stats` at 10,000: last line" in text
    assert "first batch in 20.00 s on 106,574 tracks** (target < 60 s: **met**)" in text
    assert "contended run" not in text and "prediction from a store: no store input" in text
    assert "**0.90** | **met**" in text and "**0.10** | **missed**" in text
    assert (tmp_path / "img" / "perf-growth-stores.png").stat().st_size > 10_000
    assert (tmp_path / "img" / "perf-growth-manifest.png").exists()


def test_a_contended_run_says_so_and_a_slow_first_batch_is_missed(tmp_path):
    text = _section(_result(load_max=6.5, first_batch_top=75.0), tmp_path)
    assert "**These figures come from a contended run**" in text and "6.50 at most" in text
    assert "(target < 60 s: **missed**)" in text


def test_the_newest_full_result_is_chosen(tmp_path):
    (tmp_path / "a-2026-12-01.json").write_text(json.dumps({**_result(1.0, 20.0), "date": "2026-12-01"}))
    (tmp_path / "a-2026-12-07-400.json").write_text(
        json.dumps({**_result(1.0, 20.0), "full": False, "date": "2026-12-07"})
    )
    assert growth_report.latest(tmp_path)[0].name == "a-2026-12-01.json"


@pytest.mark.slow
def test_the_whole_run_at_tiny_sizes_measures_every_operation(tmp_path):
    assert (
        growth.main(
            [
                "--sizes",
                "40,80",
                "--parts",
                "stores,manifest",
                "--manifest-sizes",
                "300,600",
                "--no-doc",
                "--work",
                str(tmp_path / "work"),
                "--results",
                str(tmp_path / "res"),
            ]
        )
        == 0
    )
    res = json.loads(next((tmp_path / "res").glob("*-80.json")).read_text())
    stores, manifest = res["parts"]["stores"], res["parts"]["manifest"]
    for part in (stores, manifest):
        for op, s in part["ops"].items():
            assert s["n"] == part["sizes"] and all("error" not in r for r in s["runs"]), (op, s["runs"])
    assert stores["ops"]["verify"]["runs"][-1]["seconds"] > 0 and stores["ops"]["loader-epoch"]["runs"][-1]["crops"] > 0
    assert not stores["not_measured"] and stores["ops"]["predict"]["n"] == [40, 80] and res["load"]["samples"] >= 1
    assert (tmp_path / "work" / "predictions-80.parquet").exists()  # mrnet-predict --store wrote the test split
    text = _section(res, tmp_path)
    assert "### Whole-store operations, 40 to 80 tracks" in text and "### A manifest of up to 600 tracks" in text


def test_the_remote_table_shows_the_server_on_its_own_core_beside_shared_cores(tmp_path):
    res = _result(load_max=1.0, first_batch_top=20.0)
    remote = res["parts"]["remote"]
    remote["train"]["s3_direct"], remote["train"]["latency_ratio"] = {"rate": 95.0}, 90.0 / 95.0
    remote["pinned"] = {
        **remote,
        "cores": {"client": [0], "server": [1]},
        "train": {
            **remote["train"],
            "s3": {"rate": 85.0},
            "ratio": 0.85,
            "latency_ratio": 1.01,
            "rounds": {"ratio": [0.8, 0.85, 0.9]},
        },
    }
    text = _section(res, tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| training")]
    assert [row.split(" | ")[1] for row in rows] == ["own core", "shared"]
    assert "**0.85** (0.80–0.90) | **met** | 1.01 |" in rows[0] and "**0.90** | **met** | 0.95 |" in rows[1]
    assert "(core 1)" in text and "and at 1.01 and 0.95 of its rate from the same server" in text


def test_merging_a_partial_remote_run_replaces_what_it_measured_in_each_layout_and_keeps_the_rest():
    def layout(server: float, **measures) -> dict:
        return {"server": {"proxy": {"requests_per_s": server}}, "tracks": 1000, **measures}

    def measure(rate: float) -> dict:
        return {"local": {"rate": 100.0}, "s3": {"rate": rate}, "ratio": rate / 100.0}

    into = {
        "parts": {
            "remote": {
                **layout(400.0, train=measure(80.0), **{"cp-upload": measure(10.0)}),
                "pinned": layout(500.0, train=measure(85.0), **{"cp-upload": measure(11.0)}),
            }
        }
    }
    other = {
        "parts": {
            "remote": {
                **layout(450.0, **{"cp-upload": measure(30.0)}),
                "pinned": layout(550.0, **{"cp-upload": measure(33.0)}),
            }
        }
    }
    assert growth._merge_remote(into, other) == ["cp-upload"]
    merged = into["parts"]["remote"]
    for part, train, upload, old, new in (
        (merged, 80.0, 30.0, 400.0, 450.0),
        (merged["pinned"], 85.0, 33.0, 500.0, 550.0),
    ):
        assert part["train"]["s3"]["rate"] == train and part["cp-upload"]["s3"]["rate"] == upload
        assert part["train"]["server"]["proxy"]["requests_per_s"] == old  # each keeps its own run's server rate
        assert part["cp-upload"]["server"]["proxy"]["requests_per_s"] == new
