#!/usr/bin/env bash
# Training throughput of ppo and ppo_teacher with 1, 4, 8 and 16 cores: how the training scales with the cores.
# Run from the repository root on a machine with at least 16 CPUs, the virtual environment carried along:
#
#   bash benchmarks/large_machine/scaling.sh          # ~5 min with REPEATS=1
#
# Writes $OUT/scaling.{json,md} (training) and $OUT/scaling_envs.{json,md} (the vector env
# alone); OUT defaults to benchmarks/results. One core: the sub-envs in the main process; k cores:
# --async-envs, the sub-envs spread over k worker processes, the recorded teacher running in them.
# The learner stays on the CPU (--no-cuda, one thread) so that only the number of cores changes.
# Environment: PYTHON (default .venv/bin/python), FRAMES (20480), REPEATS (1), NUM_ENVS (16), CORES ("1 4 8 16").
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-benchmarks/results}"
CORES="${CORES:-1 4 8 16}"
configs=()
env_configs=()
for cores in $CORES; do
    configs+=("ppo:$cores" "ppo_teacher:$cores")
    env_configs+=("envs:$cores" "envs_teacher:$cores")
done
nproc
"$PYTHON" -c "import teacher_wrappers, torch; print('torch', torch.__version__)"
"$PYTHON" -m benchmarks.throughput --configs "${configs[@]}" --frames "${FRAMES:-20480}" \
    --repeats "${REPEATS:-1}" --num-envs "${NUM_ENVS:-16}" --eval-episodes 32 \
    --name scaling --out "$OUT" -- --no-cuda
# The vector env alone (random actions, no learner): how the env and teacher side scales (~1 min).
"$PYTHON" -m benchmarks.throughput --configs "${env_configs[@]}" --frames 65536 --repeats "${REPEATS:-1}" \
    --num-envs "${NUM_ENVS:-16}" --name scaling_envs --out "$OUT"
cat "$OUT/scaling.md" "$OUT/scaling_envs.md"
