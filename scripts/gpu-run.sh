#!/usr/bin/env bash
# On a GPU machine without network: unpack .gpu-kit (built here by scripts/gpu-kit.sh), put this
# checkout's src/ on the path (src/mrnet links the package folders: no install, no build tools), check
# that every mrnet package imports, run "$@", and copy new benchmark results to $OUT (the device tool
# brings $OUT back). tests/core/test_gpu_kit.py runs this on CPU with a fake kit. Example (device
# tool, carry [".gpu-kit"]):
#   bash scripts/gpu-run.sh python3 -m benchmarks.run --device cuda --only extraction,batching
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$(mktemp)
kit=${MRNET_GPU_KIT:-$repo/.gpu-kit}
site=${MRNET_GPU_SITE:-/tmp/mrnet-site}
mkdir -p "$site"
[[ -f "$site/.unpacked" ]] || { tar -xJf "$kit/site.tar.xz" -C "$site" && touch "$site/.unpacked"; }
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MRNET_BENCH_CACHE=${MRNET_BENCH_CACHE:-/tmp/mrnet-bench}
mkdir -p "$MRNET_BENCH_CACHE/music"
[[ -d "$MRNET_BENCH_CACHE/music/root" ]] || tar -xf "$kit/music.tar" -C "$MRNET_BENCH_CACHE/music"
export PYTHONPATH="$repo/src:$PYTHONPATH"
python3 - <<'PY'
import importlib, pathlib, sys

import torch

packages = sorted(p.name for p in pathlib.Path("src/mrnet").iterdir())
for name in [f"mrnet.{p}" for p in packages] + ["mrnet.extract.pipeline", "mrnet.train.loop"]:
    importlib.import_module(name)
cuda = torch.cuda.is_available()
print("gpu-run: mrnet", " ".join(packages), "from", pathlib.Path(sys.modules["mrnet.core"].__file__).resolve().parent.parent)
print("gpu-run: torch", torch.__version__, "cuda", cuda, torch.cuda.get_device_name(0) if cuda else "")
PY
status=0
"$@" || status=$?
if [[ -n "${OUT:-}" ]]; then
    find benchmarks/results -maxdepth 1 -name '*.json' -newer "$started" -exec cp {} "$OUT/" \;
fi
exit $status
