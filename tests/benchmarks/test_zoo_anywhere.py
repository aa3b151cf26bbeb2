"""``python -m benchmarks.zoo`` from a folder other than the clone's root: with the clone on PYTHONPATH it
plans the same runs, and writes nothing into the folder it was started from (docs/models.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_zoo_plans_from_another_folder_and_leaves_it_untouched(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.zoo", "--print", "--dataset", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "mrnet-train --store /" in done.stdout  # absolute stores: nothing relative to the working folder
    assert list(tmp_path.iterdir()) == []
