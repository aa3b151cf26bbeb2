# Two entry points a newcomer needs; both set up the environment first (scripts/bootstrap.sh).
.PHONY: demo check test test-fast bench

demo:  ## extract the built-in demo dataset and train MRNet on it (CPU, minutes)
	scripts/dev.sh demo

check:  ## static checks: ruff lint and format, mypy (what they cover: pyproject.toml; docs/development.md)
	scripts/dev.sh check

test: check  ## the static checks, then every test that needs no GPU, slow ones included (what CI runs)
	scripts/dev.sh test -m "not gpu"

test-fast:  ## the quick subset (no slow tests) for the edit-test loop
	scripts/dev.sh test

bench:  ## benchmarks; writes docs/performance.md
	scripts/dev.sh bench
