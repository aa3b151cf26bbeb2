"""docs/results.md from the results files: new runs never averaged with the earlier measurement, which is
marked, and "What changed" compares each configuration seed by seed."""

from __future__ import annotations

import json

from benchmarks import realmusic_page, realmusic_runs


def _run(config: str, seed: int, test: float, valid: float) -> dict:
    return {"config": config, "seed": seed, "run": f"/nowhere/{config}-s{seed}", "test_accuracy": test,
            "test_macro_f1": test - 0.05, "valid_accuracy": valid, "epoch": 3, "epochs": 4, "normalize": "none",
            "parameters": 1000, "seconds": 60.0}  # fmt: skip


def _results(runs: list[dict]) -> dict:
    per_class = {"a": {"package": "a-data", "clips": {"train": 3, "valid": 1, "test": 1}, "pieces": {"train": 1}}}
    return {"dataset": {"classes": 14, "clips": 648, "clip_seconds": 30.0, "clips_per_track": 6, "clips_per_class": 60,
                        "per_class": per_class},
            "machine": {"cpu": "test", "logical_cpus": 2, "torch": "x"}, "started": "then", "finished": "now",
            "sklearn_probe": {"grid": [1e-4, 1e3], "C": 1.0, "valid_accuracy": 0.4, "test_accuracy": 0.43, "test_macro_f1": 0.42},
            "runs": runs}  # fmt: skip


def test_the_page_keeps_earlier_rows_apart_and_says_what_changed(tmp_path, monkeypatch):
    earlier, now = tmp_path / "earlier.json", tmp_path / "now.json"
    earlier.write_text(json.dumps(_results([_run("linear", 0, 0.40, 0.40), _run("small60-none", 0, 0.50, 0.55),
                                            _run("small60-none", 1, 0.60, 0.57), _run("tiny", 0, 0.55, 0.47)])))  # fmt: skip
    now.write_text(json.dumps(_results([_run("linear", 0, 0.40, 0.41), _run("tiny", 0, 0.55, 0.47)])))
    monkeypatch.setattr(realmusic_page, "EARLIER", earlier)
    monkeypatch.setattr(realmusic_page, "RESULT_FILE", now)
    monkeypatch.setattr(realmusic_runs, "RESULT_FILE", now)
    monkeypatch.setattr(realmusic_page, "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    page = realmusic_page.render().read_text()
    rows: dict[str, str] = {}
    for line in page.split("## Results")[1].splitlines():  # the results table: each configuration's first line
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[0].strip("|* "), line)
    # tiny was measured again: only the new run; small60-none only earlier: marked, its two seeds alone
    assert "| 1 | 55.0 |" in rows["tiny"] and "†" not in rows["tiny"]
    assert rows["small60-none** †"].count("55.0 ± 7.1") == 1
    # seed by seed: the probe's valid number moved, tiny's did not
    assert "| linear | 0 | 40.0 → 40.0 | 40.0 → 41.0 | **differs** |" in page
    assert "| tiny | 0 | 55.0 → 55.0 | 47.0 → 47.0 | identical |" in page
    # the target compares the earlier MRNet row with the earlier probe, never with the new one
    assert "**+15.0 points**" in page and "Both sides are the earlier measurement" in page
    assert (tmp_path / "docs" / "img" / "realmusic.png").stat().st_size > 0


def test_runs_from_another_cpu_are_not_called_a_changed_result(tmp_path, monkeypatch):
    earlier, now = tmp_path / "earlier.json", tmp_path / "now.json"
    old = _results([_run("tiny", 0, 0.55, 0.47), _run("small60-none", 0, 0.5, 0.5)]) | {
        "machine": {"cpu": "AMD EPYC", "logical_cpus": 2, "torch": "x"}
    }
    earlier.write_text(json.dumps(old))
    now.write_text(json.dumps(_results([_run("tiny", 0, 0.56, 0.52)])))
    for module, name, value in ((realmusic_page, "EARLIER", earlier), (realmusic_page, "RESULT_FILE", now),
                                (realmusic_runs, "RESULT_FILE", now), (realmusic_page, "REPO", tmp_path)):  # fmt: skip
        monkeypatch.setattr(module, name, value)
    (tmp_path / "docs").mkdir()
    page = realmusic_page.render().read_text()
    assert "| tiny | 0 | 55.0 → 56.0 | 47.0 → 52.0 | differs (other CPU) |" in page and "**differs**" not in page
    assert "the CPU's, not the code's" in page and realmusic_page.SAME_CPU_CHECK in page
