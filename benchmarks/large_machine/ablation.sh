#!/usr/bin/env bash
# The ablation of benchmarks/ablation.py (which of the student's pieces lets it surpass an imperfect
# teacher) on a machine with 16 cores: 16 runs side by side, one core each (OMP_NUM_THREADS=1).
#
#   bash benchmarks/large_machine/ablation.sh                        # every configuration, task and seed
#   bash benchmarks/large_machine/ablation.sh --configs reference adaptive --seeds 1 2 3
#   BUDGET_S=3600 bash benchmarks/large_machine/ablation.sh          # stop after an hour; run it again to go on
#
# Arguments go to `benchmarks.ablation run`; finished runs (a summary.json that parses) are not run again.
# Then benchmarks.ablation report writes ABLATION.md and ablation.json to $RESULTS.
# Environment: PYTHON (default .venv/bin/python), RUNS (benchmarks/runs/ablation), RESULTS
# (benchmarks/results), WORKERS (16), BUDGET_S (seconds before the runs are stopped; default: no limit).
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-benchmarks/runs/ablation}
RESULTS=${RESULTS:-benchmarks/results}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy
echo "cores: $(nproc)"
mkdir -p "$RUNS"
timeout "${BUDGET_S:-0}" "$PYTHON" -m benchmarks.ablation run --runs "$RUNS" --workers "${WORKERS:-16}" "$@" \
  2>&1 | tee "$RUNS/ablation.log"
"$PYTHON" -m benchmarks.ablation report --runs "$RUNS" --out "$RESULTS" > /dev/null
tail -30 "$RESULTS/ABLATION.md"
