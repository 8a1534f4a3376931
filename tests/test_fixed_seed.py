"""Results that must not change: short fixed-seed runs of both scripts give the recorded weights and curves.

A change meant to keep results (a refactor, a speed-up) must pass this test unchanged. A change meant to
change them (a new default student, a faster network) regenerates the record and says why:

    REGENERATE_FIXED_SEED=1 .venv/bin/python -m pytest tests/test_fixed_seed.py

The record holds the torch version it was made with; on another version the test skips (kernels may
round differently). The runs happen in this process (helpers.run_script puts back every random generator and
global setting a run changes, so a run does not depend on the runs before it); `FIXED_SEED_ROOT` runs the
scripts of another checkout instead, each in its own process (to record an older version).
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import run_script

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests/data/fixed_seed.json"
COMMON = ["--num-envs", "4", "--num-steps", "32", "--eval-episodes", "2", "--eval-envs", "2", "--seed", "5",
          "--no-progress"]
RUNS = {
    # plain PPO on a BabyAI id: the mission and the revisit count in the student's input
    "ppo-babyai-visits": ("ppo.py", ["--env-id", "BabyAI-GoToObj-v0", "--visits", "--total-timesteps", "512"]),
    # the success buffer fills and the Q-filter acts (a random student often succeeds in Empty-5x5)
    "ppo_teacher-successes-qfilter": ("ppo_teacher.py", [
        "--env-id", "MiniGrid-Empty-5x5-v0", "--planner", "rules", "--success-buffer-min", "8", "--q-filter",
        "--teacher-eval-episodes", "2", "--total-timesteps", "1024"]),
    # the paper's loss and schedule, recorded LLM teacher on a paper task
    "ppo_teacher-recorded-reference": ("ppo_teacher.py", [
        "--env-id", "TeacherWrappers/ColoredDoorKey-v0", "--distill-from", "on-policy", "--schedule", "reference",
        "--total-timesteps", "512"]),
}
CURVES = ("frames", "success_rate", "episodic_return", "episodes", "lambda")


def weights_digest(state: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def outcome(tmp_path: Path, name: str) -> dict:
    script, args = RUNS[name]
    if os.environ.get("FIXED_SEED_ROOT"):
        root = Path(os.environ["FIXED_SEED_ROOT"])
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, str(root / "algorithms" / script), *args, *COMMON, "--run-name", name],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    else:
        proc = run_script(script, *args, *COMMON, "--run-name", name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / name
    summary = json.loads((run / "summary.json").read_text())
    weights = torch.load(run / "checkpoints/latest.pt", weights_only=False)["agent"]
    return {"weights_sha256": weights_digest(weights),
            "curve": {key: summary["learning_curve"][key] for key in CURVES if key in summary["learning_curve"]},
            "eval": [summary["eval_success_rate"], summary["eval_mean_return"], summary["eval_sampled_mean_return"]]}


@pytest.mark.parametrize("name", list(RUNS))
def test_fixed_seed_runs_give_the_recorded_weights_and_curves(tmp_path, name):
    if os.environ.get("REGENERATE_FIXED_SEED"):
        record = json.loads(RECORD.read_text()) if RECORD.exists() else {"runs": {}}
        record["torch"] = torch.__version__
        record["runs"][name] = {"script": RUNS[name][0], "args": RUNS[name][1] + COMMON, **outcome(tmp_path, name)}
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
        pytest.skip(f"recorded {name} in {RECORD}")
    record = json.loads(RECORD.read_text())
    if record["torch"] != torch.__version__:
        pytest.skip(f"recorded with torch {record['torch']}, this is {torch.__version__}")
    expected = record["runs"][name]
    assert expected["args"] == RUNS[name][1] + COMMON, "the run's settings changed: regenerate the record"
    got = outcome(tmp_path, name)
    assert got["curve"] == expected["curve"]
    assert got["eval"] == expected["eval"]
    assert got["weights_sha256"] == expected["weights_sha256"]
