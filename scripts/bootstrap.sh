#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and print its path.
#
# The venv lives outside the clone, keyed by a hash of requirements.lock, so a fresh clone on the same
# machine reuses it and a changed lock file builds a new one. torch's CUDA wheels make it ~7 GB; a first
# install takes a few minutes from PyPI.
#   scripts/bootstrap.sh            -> prints the venv path (installs first if needed)
#   scripts/bootstrap.sh --relock   -> resolves pyproject.toml afresh and rewrites requirements.lock
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
key=$(sha256sum "$repo/requirements.lock" | cut -c1-12)
root=${MRNET_VENV_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/mrnet}
venv=${MRNET_VENV:-$root/venv-$key}

if [[ "${1:-}" == "--relock" ]]; then
    tmp=$(mktemp -d)
    "$python" -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q "$repo[test]" >&2
    { echo "# Exact versions for Linux x86_64 / CPython 3.11, installed by scripts/bootstrap.sh."
      echo "# Regenerate: scripts/bootstrap.sh --relock (resolves pyproject.toml afresh and rewrites this file)."
      "$tmp/venv/bin/pip" freeze --exclude mrnet; } > "$repo/requirements.lock"
    rm -rf "$tmp"
    echo "rewrote $repo/requirements.lock" >&2
    exit 0
fi

if [[ ! -f "$venv/.complete" ]]; then
    echo "mrnet: creating $venv (first time on this machine; a few minutes)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    # pip's file:// index warnings on this workplace's machines are noise; its exit status is what counts.
    "$venv/bin/pip" install -q -r "$repo/requirements.lock" "setuptools>=68" > "$venv.log" 2>&1 \
        || { grep -v "is ignored: it is neither" "$venv.log" >&2; exit 1; }
    "$venv/bin/python" -c "import torch, torchaudio, transformers, zarr, polars, soundfile" >&2
    touch "$venv/.complete"
fi
# The project itself, editable, from this clone: src/mrnet/ links the package folders, so the install is a
# plain path entry (a .pth naming $repo/src) that editors, mypy and jedi follow, and a file or package added
# later needs no reinstall. Redone when the venv points at another clone or pyproject.toml changed since.
where=$("$venv/bin/python" -c "import mrnet.store, pathlib; print(pathlib.Path(mrnet.store.__file__).parent.parent)" 2>/dev/null || true)
stamp="$venv/.project-$(sha256sum "$repo/pyproject.toml" | cut -c1-12)"
if [[ "$where" != "$repo/src/mrnet" || ! -f "$stamp" ]]; then
    "$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$repo" > "$venv.log" 2>&1 \
        || { grep -v "is ignored: it is neither" "$venv.log" >&2; exit 1; }
    rm -f "$venv"/.project-*
    touch "$stamp"
fi
echo "$venv"
