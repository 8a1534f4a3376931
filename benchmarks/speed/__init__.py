"""The wrapper-overhead suite (pytest-benchmark) and its report, benchmarks/results/speed.md."""
