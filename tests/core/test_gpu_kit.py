"""The GPU kit (scripts/gpu-kit.sh, scripts/gpu-run.sh), exercised on CPU so it cannot rot.

The GPU machines have torch but neither network nor mrnet: gpu-run.sh unpacks the kit's site packages,
puts this checkout's ``src/`` on the path and imports every ``mrnet`` package before it runs the command.
Here it runs the same way, with a fake kit (a site tarball holding one marker module, an empty music
tarball) and a Python that sees this environment's dependencies but not its mrnet install.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.name for p in (REPO / "src" / "mrnet").iterdir())


def fake_kit(kit: Path) -> None:
    """site.tar.xz with a module ``gpu_kit_marker``; music.tar with an empty ``root/``."""
    kit.mkdir()
    with tarfile.open(kit / "site.tar.xz", "w:xz") as tar:
        body = b"WHERE = 'kit'\n"
        info = tarfile.TarInfo("gpu_kit_marker.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    with tarfile.open(kit / "music.tar", "w") as tar:
        info = tarfile.TarInfo("root")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)


def python_without_mrnet(where: Path) -> Path:
    """A venv whose site-packages names this environment's as a plain path entry: its dependencies
    (torch, zarr, ...) import, but its .pth files (the editable mrnet install) are not read, as on a
    GPU machine where mrnet is not installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    purelib = Path(
        subprocess.check_output(
            [where / "bin" / "python3", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    sites = [entry for entry in sys.path if Path(entry).name in ("site-packages", "dist-packages")]
    (purelib / "dependencies.pth").write_text("".join(f"{entry}\n" for entry in sites))
    return where / "bin"


def test_gpu_run_imports_every_package_from_this_checkout(tmp_path):
    fake_kit(tmp_path / "kit")
    bin_dir = python_without_mrnet(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OUT", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        MRNET_GPU_KIT=str(tmp_path / "kit"),
        MRNET_GPU_SITE=str(tmp_path / "site"),
        MRNET_BENCH_CACHE=str(tmp_path / "bench"),
    )
    probe = "import gpu_kit_marker, mrnet.core, sys; print('probe', gpu_kit_marker.WHERE, sys.prefix)"
    # Without the script's path setup, that Python has no mrnet: the test below cannot pass by accident.
    bare = subprocess.run([bin_dir / "python3", "-c", "import mrnet.core"], env=env, capture_output=True, text=True)
    assert "No module named 'mrnet" in bare.stderr

    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu-run.sh"), "python3", "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    listed = re.search(r"^gpu-run: mrnet (.*) from (.*)$", done.stdout, re.M)
    assert listed, done.stdout
    assert listed.group(1).split() == PACKAGES
    assert Path(listed.group(2)) == REPO
    assert "gpu-run: torch" in done.stdout
    assert f"probe kit {tmp_path / 'venv'}" in done.stdout
    assert (tmp_path / "bench" / "music" / "root").is_dir()


def test_gpu_run_fails_when_a_package_does_not_import(tmp_path):
    """The import check is real: a package folder that cannot be imported stops the run before the command."""
    fake_kit(tmp_path / "kit")
    bin_dir = python_without_mrnet(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OUT", "VIRTUAL_ENV")}
    # A package on the kit's site path that shadows mrnet with a namespace missing core: as on the GPU
    # machines before src/mrnet linked core ("No module named 'mrnet.core'").
    (tmp_path / "site" / "mrnet").mkdir(parents=True)
    (tmp_path / "site" / "mrnet" / "__init__.py").write_text("")
    (tmp_path / "site" / ".unpacked").touch()
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        MRNET_GPU_KIT=str(tmp_path / "kit"),
        MRNET_GPU_SITE=str(tmp_path / "site"),
        MRNET_BENCH_CACHE=str(tmp_path / "bench"),
    )
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu-run.sh"), "touch", str(tmp_path / "ran")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert "No module named 'mrnet." in done.stderr
    assert not (tmp_path / "ran").exists()


def test_gpu_kit_packages_are_pinned():
    """scripts/gpu-kit.sh installs each package of scripts/gpu-kit.txt at its requirements.lock version."""
    lock = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    wanted = [
        line.strip()
        for line in (REPO / "scripts" / "gpu-kit.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert wanted
    assert [name for name in wanted if name.lower().replace("_", "-") not in lock] == []


def test_mrnet_imports_and_reads_without_the_packages_the_kit_leaves_out(tmp_path):
    """The kit leaves out obstore and s3fs (the GPU machines reach no bucket): every package still imports,
    and an S3 location falls back to s3fs's path rather than failing at import."""
    probe = f"""
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("obstore", "s3fs"):
            raise ImportError(f"No module named {{name!r}} (left out of the GPU kit)")
        return None

sys.meta_path.insert(0, Absent())
for name in {[f"mrnet.{p}" for p in PACKAGES] + ["mrnet.extract.pipeline", "mrnet.train.loop"]!r}:
    importlib.import_module(name)
from mrnet.store import Location
print("objects", Location.parse("s3://bucket/x.zarr", {{}}).objects)
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "objects None" in done.stdout
