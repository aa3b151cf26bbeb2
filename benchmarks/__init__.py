"""Performance benchmarks of mrnet: ``python -m benchmarks.run [--quick] [--only NAME]`` (``make bench``).

Each figure module (extraction, batching, write, loader, training, memory) measures one figure of
docs/performance.md and returns plain JSON-able numbers; ``run`` collects them into
``benchmarks/results/<machine>-<date>.json``. ``report`` rebuilds docs/performance.md from the result
files: the words are ``performance.md.in``, the before-figures of applied fixes are recorded results
(``results/history/before-after.json``). Benchmarks are not tests: nothing here asserts a timing.
"""
