"""Performance benchmarks of mrnet: ``python -m benchmarks.run [--quick] [--only NAME]`` (``make bench``).

Each module measures one figure of docs/performance.md and returns plain JSON-able numbers; ``run``
collects them into ``benchmarks/results/<machine>-<date>.json`` and ``report`` turns the results into
docs/performance.md. Benchmarks are not tests: nothing here asserts a timing.
"""
