"""Load tests and benchmarks for the engine (run them from the repository root).

`python -m loadtest.bench_fanout` measures fan-out against a plain `websockets` baseline; see
`docs/benchmarks.md`.
"""
