#!/usr/bin/env bash
# Run a project task inside the bootstrapped venv: demo | check | test [pytest args] | bench [args] | shell CMD...
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$("$repo/scripts/bootstrap.sh")
export PATH="$venv/bin:$PATH"
cd "$repo"
task=${1:-test}; shift || true
case "$task" in
    demo)
        mrnet-extract demo
        mrnet-train --store store/demo.zarr --preset tiny
        ;;
    check)
        # What each covers is set in pyproject.toml ([tool.ruff] include, [tool.mypy] packages).
        ruff check
        ruff format --check
        mypy
        ;;
    test)  python -m pytest "$@" ;;
    bench) python -m benchmarks.run "$@" ;;
    shell) "$@" ;;
    *) echo "usage: scripts/dev.sh demo|check|test|bench|shell CMD" >&2; exit 2 ;;
esac
