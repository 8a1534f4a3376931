#!/usr/bin/env bash
# The issue-8 ablation on a 16-core machine (the lent GPU machine's CPUs; the GPU is not used).
#   bash benchmarks/device_ablation.sh        # runs under $OUT (default /tmp/ablation_out), then a tarball of summaries
# Python packages missing there travel as wheels in .whl/ (see ../.library/device/README.md).
set -uo pipefail
OUT=${OUT:-/tmp/ablation_out}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy
echo "cores: $(nproc --all)"
timeout "${BUDGET_S:-480}" python3 -m benchmarks.ablation run --runs "$OUT/ablation" --workers "${WORKERS:-16}" "$@" \
  2>&1 | tee "$OUT/ablation.log"
python3 -m benchmarks.ablation report --runs "$OUT/ablation" --out "$OUT" > /dev/null 2>&1
tar czf "$OUT/ablation_summaries.tgz" -C "$OUT" $(cd "$OUT" && ls -d ablation/*/summary.json 2>/dev/null)
tail -30 "$OUT/ABLATION.md" 2>/dev/null
