#!/usr/bin/env bash
# Build .gpu-kit/ here, for a GPU machine that has no network (docs/performance.md, "On a GPU machine"):
#   site.tar.xz  the packages of scripts/gpu-kit.txt, installed for CPython 3.12 / manylinux x86_64
#                (xz, because the wheels alone exceed the 64 MiB a device run may carry)
#   music.tar    the benchmark's real music (Debian's asc-music MP3s), which the machine cannot fetch
# Then, on the machine: scripts/gpu-run.sh COMMAND... (unpacks the kit, installs mrnet, runs COMMAND).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kit="$repo/.gpu-kit"
py=${GPU_KIT_PYTHON:-3.12}
venv=$("$repo/scripts/bootstrap.sh")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$kit"

pins=()
while read -r name; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    pin=$(grep -i -E "^${name//-/[-_]}==" "$repo/requirements.lock" || true)
    [[ -n "$pin" ]] || { echo "gpu-kit: $name is not in requirements.lock" >&2; exit 1; }
    pins+=("$pin")
done < "$repo/scripts/gpu-kit.txt"

platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_5_x86_64; do
    platforms+=(--platform "$p")
done
binary=(--only-binary=:all: --python-version "$py" --implementation cp "${platforms[@]}")
"$venv/bin/python" -m pip download -q --no-deps "${binary[@]}" -d "$tmp/wheels" "${pins[@]}"
"$venv/bin/python" -m pip install -q --no-deps --no-compile "${binary[@]}" --target "$tmp/site" "$tmp"/wheels/*.whl
tar -C "$tmp/site" -cf - . | xz -T0 -6 > "$kit/site.tar.xz"

"$venv/bin/python" -c "from benchmarks.data import music_sources; import sys; found, what = music_sources(); print(what); sys.exit(0 if found else 1)"
cache=${MRNET_BENCH_CACHE:-$HOME/.cache/mrnet/bench}
tar -C "$cache/music" -cf "$kit/music.tar" root

du -sh "$kit"/*
echo "gpu-kit: ready in $kit ($(du -sm "$kit" | cut -f1) MB; a device run carries at most 64 MiB with the repo)"
