# Two entry points a newcomer needs; both set up the environment first (scripts/bootstrap.sh).
.PHONY: demo test test-fast bench

demo:  ## extract the built-in demo dataset and train MRNet on it (CPU, minutes)
	scripts/dev.sh demo

test:  ## every test that needs no GPU, slow ones included (what CI runs)
	scripts/dev.sh test -m "not gpu"

test-fast:  ## the quick subset (no slow tests) for the edit-test loop
	scripts/dev.sh test

bench:  ## benchmarks; writes docs/performance.md
	scripts/dev.sh bench
