"""Benchmarks: `python -m benchmarks.<name>`; ratios are measured in the same run."""
