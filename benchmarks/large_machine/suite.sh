#!/usr/bin/env bash
# Students on three suite envs: ppo_teacher with the rules teacher against plain PPO, seeds 1-3.
# 18 runs side by side on a 16-core machine (one core each, OMP_NUM_THREADS=1), sized to
# finish in about 7 minutes at 1,000-1,500 env steps/s per process on the 7x7 and 11x6 maps; the
# 25x25 map of MultiRoom-N4-S5 costs about 4x more per step, so it gets fewer frames.
#
#   bash benchmarks/large_machine/suite.sh                  # runs under $OUT (default benchmarks/runs/suite)
#   OUT=/tmp/suite FRAMES_SCALE=0.02 bash benchmarks/large_machine/suite.sh    # a tiny smoke test
#
# Then the report step (run at the end, or alone with REPORT_ONLY=1): benchmarks.report writes
# benchmarks/results/SUITE_TRAINING.md, SUITE_TRAINING_curves.png and a summary JSON.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/runs/suite}
SCALE=${FRAMES_SCALE:-1}
SEEDS=${SEEDS:-"1 2 3"}
RESULTS=${RESULTS:-benchmarks/results}
export OMP_NUM_THREADS=1

frames() { "$PYTHON" -c "print(max(2048, int($1 * $SCALE) // 2048 * 2048))"; }

# env id and frame budget; each env: 2 methods x 3 seeds = 6 processes
JOBS=(
  "MiniGrid-KeyCorridorS3R3-v0 $(frames 400000)"
  "MiniGrid-UnlockPickup-v0 $(frames 300000)"
  "MiniGrid-MultiRoom-N4-S5-v0 $(frames 100000)"
)

status=0
if [[ -z "${REPORT_ONLY:-}" ]]; then
  mkdir -p "$OUT"
  pids=()
  for job in "${JOBS[@]}"; do
    read -r env budget <<<"$job"
    echo "$env: $budget frames, seeds $SEEDS" >&2
    # one sweep per env (its own folder: a sweep locks its folder), all three side by side
    mkdir -p "$OUT/$env"
    # shellcheck disable=SC2086
    "$PYTHON" -m benchmarks.run --tasks "$env" --methods ppo ppo_teacher:rules --seeds $SEEDS \
      --total-timesteps "$budget" --workers 6 --out "$OUT/$env" > "$OUT/$env.sweep.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  cat "$OUT"/*.sweep.log
  [[ $status -eq 0 ]] || echo "a sweep failed; see the logs above" >&2
fi

"$PYTHON" -m benchmarks.report --runs "$OUT" --out "$RESULTS" --name SUITE_TRAINING \
  --title "Students on MiniGrid suite envs: ppo_teacher with the rules teacher vs plain PPO"
exit $status
