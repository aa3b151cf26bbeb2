"""``python -m benchmarks.ab``: each side imports its own mrnet, and the summary pairs the runs."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks import ab


def test_a_commit_from_before_src_is_imported_through_a_farm_of_links(tmp_path):
    tree = tmp_path / "tree"
    for folder in ("core", "store"):
        (tree / folder).mkdir(parents=True)
        (tree / folder / "__init__.py").write_text(f"WHO = 'old {folder}'\n")
    (tree / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "mrnet.core" = "core", "mrnet.store" = "store" }\n'
    )
    path = ab.farm(tree, tmp_path / "farm")
    env = {**os.environ, "PYTHONPATH": str(path)}
    said = subprocess.run(
        [sys.executable, "-c", "import mrnet.core, mrnet.store; print(mrnet.core.WHO, mrnet.store.WHO)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert said.stdout.strip() == "old core old store", said.stderr


def test_the_summary_gives_medians_ranges_and_ratios_pair_by_pair():
    runs = {"before": [{"x": 10.0}, {"x": 20.0}, {"x": 30.0}], "after": [{"x": 12.0}, {"x": 18.0}, {"x": 33.0}]}
    s = ab.summarise(runs)["x"]
    assert s["before"]["median"] == 20.0 and (s["after"]["min"], s["after"]["max"]) == (12.0, 33.0)
    assert s["after/before"] == 18.0 / 20.0
    assert s["pairs"]["values"] == [1.2, 0.9, 1.1] and s["pairs"]["median"] == 1.1
