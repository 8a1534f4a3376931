"""What the training scripts do with bad input, checkpoints that do not fit, and failures mid-run.

Tiny budgets, in this process (helpers.run_script: the same error line, exit status and files as a
subprocess, without its ~20 s of imports); a crash runs as a subprocess, where Python's own excepthook path
is the point. Every error is one line, exit status 2 for bad input (nothing touched), 1 for a failure
during the run (a checkpoint kept).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import run_script
from llm_fixtures import FakeServer

pytestmark = pytest.mark.xdist_group("resume_and_cli")  # its module fixtures stay in one test worker

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-envs", "2", "--num-steps", "64", "--eval-episodes", "1", "--no-progress"]
TEACHER = ["--planner", "rules", "--teacher-eval-episodes", "1"]


def run(script, *args, cwd, env=None):
    """The script in this process (tests/ is importable for test envs), as a subprocess would run it."""
    return run_script(script, *args, cwd=cwd, env=env)


def run_process(script, *args, cwd, env=None):
    """The script as a user runs it: its own process, on this checkout's library, with tests/ importable."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "algorithms" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def one_line_error(proc, code):
    assert proc.returncode == code, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


def snapshot(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished runs of 3 iterations with a checkpoint per iteration: ppo.py and ppo_teacher.py."""
    folder = tmp_path_factory.mktemp("finished")
    for script, name, extra in (("ppo.py", "base", []), ("ppo_teacher.py", "teach", TEACHER)):
        proc = run(script, "--total-timesteps", "384", "--checkpoint-every", "1", "--run-name", name, *extra, *TINY,
                   cwd=folder)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


# -- command line ------------------------------------------------------------------------------------

# the checks themselves are tested as units (test_training.py); these run them as a user meets them
@pytest.mark.parametrize("script,args,message", [
    ("ppo.py", ["--total-timesteps", "0"], "--total-timesteps 0 is below one batch (--num-envs x --num-steps = 128)"),
    ("ppo_teacher.py", ["--total-timesteps", "512", "--env-id", "CartPole-v1"], "is not a MiniGrid environment"),
    ("ppo_teacher.py", ["--total-timesteps", "512", "--planner", "hf", "--model", "/nonexistent/model"],
     "model folder not found: /nonexistent/model"),
])
def test_bad_command_lines_get_one_line_errors(tmp_path, script, args, message):
    proc = run(script, *[a for a in TINY if a != "--no-progress"], *args, cwd=tmp_path)
    assert message in one_line_error(proc, 2)
    assert not (tmp_path / "runs").exists()


# -- checkpoints that cannot be read ----------------------------------------------------------------

def test_unreadable_checkpoints_are_named(tmp_path, finished):  # every kind of damage: test_training.py
    path = tmp_path / "latest.pt"
    good = (finished / "runs/base/checkpoints/latest.pt").read_bytes()
    path.write_bytes(good[: len(good) // 2])
    line = one_line_error(run("ppo.py", "--total-timesteps", "384", "--resume", str(path), *TINY, cwd=tmp_path), 2)
    assert str(path) in line
    assert not (tmp_path / "runs").exists()


# -- checkpoints that do not fit the run ------------------------------------------------------------

def test_a_checkpoint_of_the_other_script_is_refused_and_nothing_touched(tmp_path, finished):
    shutil.copytree(finished / "runs", tmp_path / "runs")
    before = snapshot(tmp_path / "runs")
    proc = run("ppo_teacher.py", "--total-timesteps", "384", *TEACHER, "--resume",
               "runs/base/checkpoints/iter_000001.pt", *TINY, cwd=tmp_path)
    assert "was written by ppo.py, not ppo_teacher.py" in one_line_error(proc, 2)
    proc = run("ppo.py", "--total-timesteps", "384", "--resume", "runs/teach/checkpoints/iter_000001.pt", *TINY,
               cwd=tmp_path)
    assert "was written by ppo_teacher.py, not ppo.py" in one_line_error(proc, 2)
    assert snapshot(tmp_path / "runs") == before  # summaries and TensorBoard events as they were


def test_other_settings_are_listed_in_one_line(tmp_path, finished):
    shutil.copytree(finished / "runs", tmp_path / "runs")
    before = snapshot(tmp_path / "runs")
    proc = run("ppo_teacher.py", "--total-timesteps", "384", "--planner", "recorded", "--teacher-eval-episodes", "1",
               "--seed", "2", "--schedule", "reference", "--resume", "runs/teach/checkpoints/iter_000001.pt", *TINY,
               cwd=tmp_path)
    line = one_line_error(proc, 2)
    for difference in ("--planner recorded (checkpoint: rules)", "--seed 2 (checkpoint: 1)",
                       "--schedule reference (checkpoint: adaptive)"):
        assert difference in line
    assert snapshot(tmp_path / "runs") == before


def test_a_budget_change_needs_the_flag(tmp_path, finished):
    shutil.copytree(finished / "runs", tmp_path / "runs")
    checkpoint = "runs/base/checkpoints/iter_000003.pt"
    proc = run("ppo.py", "--total-timesteps", "512", "--resume", checkpoint, *TINY, cwd=tmp_path)
    line = one_line_error(proc, 2)
    assert "--total-timesteps 512 (checkpoint: 384)" in line and "--num-envs" not in line
    proc = run("ppo.py", "--total-timesteps", "512", "--resume-allow-budget-change", "--resume", checkpoint, *TINY,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs/base/summary.json").read_text())
    assert summary["frames"] == 512 and len(summary["learning_curve"]["frames"]) == 4


# -- failures in the middle of a run ------------------------------------------------------------------

def test_an_exception_mid_run_keeps_the_finished_iterations(tmp_path):
    common = ["--env-id", "failing_env:FailingDoorKey-v0", "--total-timesteps", "384", "--run-name", "crash", *TINY]
    # a real process: the crash handler is Python's sys.excepthook
    proc = run_process("ppo.py", *common, cwd=tmp_path, env={"FAILING_ENV_AT": "150"})  # a sub-env's step 150: iteration 3
    line = one_line_error(proc, 1)
    assert "RuntimeError: sensor failure at step 150" in line and "checkpoint of iteration 2 written" in line
    assert "sensor failure" in (tmp_path / "runs/crash/error.log").read_text()  # the traceback, for debugging
    state = torch.load(tmp_path / "runs/crash/checkpoints/latest.pt", weights_only=False)
    assert state["iteration"] == 2 and state["global_step"] == 2 * 128
    proc = run("ppo.py", *common, "--resume", "runs/crash/checkpoints/latest.pt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "runs/crash/summary.json").read_text())["frames"] == 384


class FailingClip:
    """torch.nn.utils.clip_grad_norm_, counting its calls (one per optimizer step); with `fail_at`, that call
    raises: a failure in the middle of an iteration's update, after some of its optimizer steps."""

    def __init__(self, fail_at=None):
        self.clip, self.calls, self.fail_at = torch.nn.utils.clip_grad_norm_, 0, fail_at

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError(f"device lost at optimizer step {self.calls}")
        return self.clip(*args, **kwargs)


@pytest.mark.parametrize("script,extra", [("ppo.py", []), ("ppo_teacher.py", TEACHER)])
def test_resuming_after_a_crash_mid_update_matches_an_uninterrupted_run(tmp_path, monkeypatch, script, extra):
    """The checkpoint a crash writes is the state at the end of the last finished iteration, all of it: the
    weights and optimizer of that moment too, not the ones the interrupted update had changed since."""
    common = ["--total-timesteps", "384", *extra, *TINY]  # 3 iterations
    counting = FailingClip()
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", counting)
    proc = run(script, *common, "--checkpoint-every", "1", "--run-name", "full", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    per_iteration = counting.calls // 3
    # the crash: in iteration 3, after half of its optimizer steps; no checkpoint written before it
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", FailingClip(fail_at=2 * per_iteration + per_iteration // 2))
    line = one_line_error(run(script, *common, "--checkpoint-every", "0", "--run-name", "crash", cwd=tmp_path), 1)
    assert "RuntimeError: device lost" in line and "checkpoint of iteration 2 written" in line
    second = torch.load(tmp_path / "runs/full/checkpoints/iter_000002.pt", weights_only=False)
    same_as_second(tmp_path / "runs/crash/checkpoints/latest.pt", second)
    # resumed, it crashes again in its first iteration: the checkpoint it resumed from is still the state to keep
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", FailingClip(fail_at=per_iteration // 2))
    line = one_line_error(run(script, *common, "--resume", "runs/crash/checkpoints/latest.pt", cwd=tmp_path), 1)
    assert "checkpoint of iteration 2 written" in line
    same_as_second(tmp_path / "runs/crash/checkpoints/latest.pt", second)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", counting.clip)
    proc = run(script, *common, "--resume", "runs/crash/checkpoints/latest.pt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    full, resumed = (torch.load(tmp_path / f"runs/{name}/checkpoints/latest.pt", weights_only=False)
                     for name in ("full", "crash"))
    assert all(torch.equal(full["agent"][name], resumed["agent"][name]) for name in full["agent"])
    curves = [json.loads((tmp_path / f"runs/{name}/summary.json").read_text())["learning_curve"]
              for name in ("full", "crash")]
    assert curves[0]["success_rate"] == curves[1]["success_rate"] and curves[1]["frames"] == [128, 256, 384]


def same_as_second(path, second):
    """The checkpoint at `path` holds the weights and optimizer state of `second`'s."""
    crashed = torch.load(path, weights_only=False)
    assert crashed["iteration"] == second["iteration"] and crashed["global_step"] == second["global_step"]
    for key in ("agent", "optimizer"):
        assert torch.equal(torch.cat([t.flatten() for t in tensors(crashed[key])]),
                           torch.cat([t.flatten() for t in tensors(second[key])])), key


def tensors(state):
    """The tensors of a state dict (a module's or an optimizer's), in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for value in state for t in tensors(value)]
    return []


def test_a_planner_server_that_starts_failing_leaves_a_checkpoint(tmp_path):
    server = FakeServer()
    server.fail_after = 3  # the first texts are answered, then every request gets HTTP 500
    common = ["--planner", "openai", "--base-url", server.url, "--model", "fake-model", "--schedule", "linear",
              "--total-timesteps", "384", "--run-name", "served", *TINY]
    cache = {"TEACHER_WRAPPERS_CACHE": str(tmp_path / "answers.sqlite")}
    try:
        line = one_line_error(run("ppo_teacher.py", *common, cwd=tmp_path, env=cache), 1)
        assert "PlannerError" in line and server.url in line and "HTTP 500" in line and "written to" in line
        state = torch.load(tmp_path / "runs/served/checkpoints/latest.pt", weights_only=False)
        server.fail_after = None  # the server is back
        proc = run("ppo_teacher.py", *common, "--resume", "runs/served/checkpoints/latest.pt", cwd=tmp_path, env=cache)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        server.close()
    summary = json.loads((tmp_path / "runs/served/summary.json").read_text())
    assert summary["frames"] == 384 and len(summary["learning_curve"]["frames"]) == 3
    # the teacher's counters went on from the checkpoint's, not from zero
    assert summary["teacher_stats"]["steps"] == state["teacher"]["teacher"]["stats"]["steps"] + 384 - state["global_step"]
