#!/usr/bin/env bash
# On a GPU machine without network: unpack .gpu-kit (built here by scripts/gpu-kit.sh), put this
# checkout's packages on the path as the mrnet namespace (pyproject's package-dir, as symlinks: no
# build tools needed), run "$@", and copy new benchmark results to $OUT (the device tool brings $OUT
# back). Example (device tool, carry [".gpu-kit"]):
#   bash scripts/gpu-run.sh python3 -m benchmarks.run --device cuda --only extraction,batching
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$(mktemp)
site=/tmp/mrnet-site
mkdir -p "$site"
[[ -f "$site/.unpacked" ]] || { tar -xJf .gpu-kit/site.tar.xz -C "$site" && touch "$site/.unpacked"; }
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MRNET_BENCH_CACHE=${MRNET_BENCH_CACHE:-/tmp/mrnet-bench}
mkdir -p "$MRNET_BENCH_CACHE/music"
[[ -d "$MRNET_BENCH_CACHE/music/root" ]] || tar -xf .gpu-kit/music.tar -C "$MRNET_BENCH_CACHE/music"
src=/tmp/mrnet-src
mkdir -p "$src/mrnet"
for part in extract train store manifests; do ln -sfn "$repo/$part" "$src/mrnet/$part"; done
export PYTHONPATH="$src:$PYTHONPATH"
python3 -c "import torch, mrnet.store, mrnet.extract.pipeline, mrnet.train.loop; print('gpu-run: torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
status=0
"$@" || status=$?
if [[ -n "${OUT:-}" ]]; then
    find benchmarks/results -maxdepth 1 -name '*.json' -newer "$started" -exec cp {} "$OUT/" \;
fi
exit $status
