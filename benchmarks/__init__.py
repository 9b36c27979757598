"""Benchmarks of llmos on the embedded model; run one with `python -m benchmarks.<name>`."""
