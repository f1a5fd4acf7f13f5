"""Benchmarks: `make bench` runs every `bench/bench_*.py`; each prints its `bench` lines."""
