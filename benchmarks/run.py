"""`python -m benchmarks.run`: the sweep of methods x tasks x seeds, each run in its own process.

The sweep engine is the package `benchmarks.sweep`; its command line (`benchmarks/sweep/cli.py`) says what the
methods are and how a sweep stops, continues and refuses a folder of other runs (docs/benchmarks.md).
"""

import sys

import tyro

from benchmarks.sweep.cli import Args, main

if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
