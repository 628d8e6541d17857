"""Benchmarks: each measures ours against a baseline run in the same process."""
