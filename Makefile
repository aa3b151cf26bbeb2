# Two entry points a newcomer needs; both set up the environment first (scripts/bootstrap.sh).
.PHONY: demo test test-all bench

demo:  ## extract the built-in demo dataset and train MRNet on it (CPU, minutes)
	scripts/dev.sh demo

test:  ## the default test suite (what CI runs)
	scripts/dev.sh test

test-all:  ## every test, slow ones included
	scripts/dev.sh test -m "not gpu"

bench:  ## benchmarks; writes docs/performance.md
	scripts/dev.sh bench
