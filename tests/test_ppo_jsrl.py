"""algorithms/ppo_jsrl.py, Jump-Start RL with the teacher as its guide: the curriculum on its own, and the script
with tiny budgets (in this process, as tests/test_algorithms.py runs the scripts)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from helpers import scalars
from test_algorithms import TINY, _weights, run

ROOT = Path(__file__).resolve().parents[1]
# plain MiniGrid Empty: the rules guide solves it in a few steps and even an untrained student often reaches the goal,
# so that the curriculum moves within a few iterations (a window of 2 episodes, a bar of a quarter of the best rate)
MOVING = ["--env-id", "MiniGrid-Empty-5x5-v0", "--planner", "rules", "--teacher-eval-episodes", "4",
          "--curriculum-window", "2", "--curriculum-tolerance", "0.75"]


@pytest.fixture(scope="module")
def jsrl():
    """The script as a module (its training runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("ppo_jsrl", ROOT / "algorithms/ppo_jsrl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guide_steps_step_down_as_the_students_success_rises(jsrl):
    curriculum = jsrl.Curriculum(start=20, stages=5, window=4, tolerance=0.05, bar=1.0)
    assert curriculum.horizons == [20, 15, 10, 5, 0] and curriculum.guide_steps == 20
    for success in (True, True, True):
        curriculum.record(success)
    assert not curriculum.update()  # the window is not full yet
    curriculum.record(False)
    assert not curriculum.update() and curriculum.success_rate == 0.75  # below 0.95 x the guide's own rate
    for _ in range(3):
        curriculum.record(True)
    assert not curriculum.update()  # the window holds the last 4: one failure is still in it
    curriculum.record(True)
    assert curriculum.update() and curriculum.guide_steps == 15  # 4 of 4: the next stage, with a new window
    assert curriculum.success_rate is None and not curriculum.update()
    for _ in range(20):
        curriculum.record(False)
    assert not curriculum.update() and curriculum.guide_steps == 15  # failures never step it down

    # the bar is (1 - tolerance) x the best rate so far, which starts at the guide's own rate
    lenient = jsrl.Curriculum(start=3, stages=10, window=2, tolerance=0.1, bar=0.5)
    assert lenient.horizons == [3, 2, 1, 0]  # a stage repeated by rounding counts once
    rates = []
    for outcomes in ([True, False], [True, True], [True, False], [True, True], [True, True]):
        for success in outcomes:
            lenient.record(success)
        rates.append((lenient.update(), lenient.guide_steps, lenient.best))
    # 0.5 passes the guide's 0.5; 1.0 passes and raises the best; 0.5 < 0.9 x 1.0 fails, and the same window's last
    # two, 1.0, pass; at 0 the curriculum is over
    assert rates == [(True, 2, 0.5), (True, 1, 1.0), (False, 1, 1.0), (True, 0, 1.0), (False, 0, 1.0)]
    state = lenient.state_dict()
    again = jsrl.Curriculum(start=50, stages=2, window=2, tolerance=0.1, bar=0.0)
    again.load_state_dict(state)
    assert again.state_dict() == state and again.guide_steps == 0
    assert jsrl.Curriculum(start=0, stages=10, window=2, tolerance=0.1, bar=0.0).horizons == [0]  # no jump start


@pytest.mark.parametrize("planner", ["rules", "recorded"])
def test_trains_with_the_teacher_as_guide_and_writes_the_llm_bill(tmp_path, planner):
    run("ppo_jsrl.py", "--planner", planner, "--total-timesteps", "256", "--run-name", "j", "--teacher-eval-episodes",
        "2", *TINY, cwd=tmp_path)
    summary = json.loads((tmp_path / "runs/j/summary.json").read_text())
    assert summary["method"] == "ppo_jsrl" and summary["planner"] == planner and summary["frames"] == 256
    assert summary["guide_steps_start"] > 0  # the guide's typical successful episode on SimpleDoorKey
    assert summary["teacher_alone_success_rate"] > 0 and 0 <= summary["teacher_eval_success_rate"] <= 1
    assert summary["llm_calls"] == summary["llm_requests"] == 0 and summary["llm_seconds"] == 0  # no live LLM
    assert summary["teacher_stats"]["queries"] > 0
    assert summary["learning_curve"]["guide_steps"] == [summary["guide_steps_start"]] * 2
    tags = scalars(tmp_path / "runs/j")
    assert {"jsrl/guide_steps", "jsrl/stage", "jsrl/student_step_fraction", "teacher/llm_calls", "teacher/queries",
            "losses/value_loss", "charts/success_rate"} <= set(tags)
    fractions = tags["jsrl/student_step_fraction"]
    assert 0 < fractions[0] < 1 and all(0 <= fraction <= 1 for fraction in fractions)  # both acted


def test_the_guide_steps_fall_in_a_run_with_the_rules_teacher(tmp_path):
    run("ppo_jsrl.py", *MOVING, "--total-timesteps", "1280", "--run-name", "fall", *TINY, cwd=tmp_path)
    summary = json.loads((tmp_path / "runs/fall/summary.json").read_text())
    steps = summary["learning_curve"]["guide_steps"]
    assert steps[0] == summary["guide_steps_start"] > 0
    assert all(later <= earlier for earlier, later in zip(steps, steps[1:]))
    assert steps[-1] < steps[0] and summary["curriculum_stage"] >= 2, steps
    if steps[-1] == 0:
        assert summary["frames_to_guide_off"] == summary["learning_curve"]["frames"][steps.index(0)]


def test_resume_matches_an_uninterrupted_run(tmp_path):
    """The curriculum (its stage, bar and window), the episodes' guide state and the guide's random actions are in
    the checkpoint: a run resumed mid-curriculum ends with the same weights."""
    common = [*MOVING, "--total-timesteps", "768", "--checkpoint-every", "2"]
    run("ppo_jsrl.py", *common, "--run-name", "full", *TINY, cwd=tmp_path)
    full = tmp_path / "runs/full"
    uninterrupted = _weights(full / "checkpoints/latest.pt")
    curve = json.loads((full / "summary.json").read_text())["learning_curve"]
    assert len(set(curve["guide_steps"][1:])) > 1, curve["guide_steps"]  # the curriculum moves mid-run
    (full / "summary.json").unlink()
    run("ppo_jsrl.py", *common, "--resume", str(full / "checkpoints/iter_000002.pt"), *TINY, cwd=tmp_path)
    resumed = _weights(full / "checkpoints/latest.pt")
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)
    again = json.loads((full / "summary.json").read_text())["learning_curve"]
    assert again["guide_steps"] == curve["guide_steps"] and again["success_rate"] == curve["success_rate"]


def test_the_guides_steps_are_left_out_of_the_loss(tmp_path):
    """A guide that plays every step leaves the student untouched; the same run with the student acting trains it."""
    def weights_after(guide_steps):
        name = f"g{guide_steps}"
        run("ppo_jsrl.py", "--guide-steps-start", str(guide_steps), "--teacher-eval-episodes", "0", "--planner",
            "rules", "--total-timesteps", "384", "--checkpoint-every", "1", "--run-name", name, *TINY, cwd=tmp_path)
        return _weights(tmp_path / f"runs/{name}/checkpoints/iter_000001.pt"), \
            _weights(tmp_path / f"runs/{name}/checkpoints/latest.pt")

    first, last = weights_after(1000)  # longer than any episode: the student never acts
    assert all(torch.equal(first[name], last[name]) for name in first)
    tags = scalars(tmp_path / "runs/g1000")
    assert tags["jsrl/student_step_fraction"] == [0.0, 0.0, 0.0]
    first, last = weights_after(0)
    assert not all(torch.equal(first[name], last[name]) for name in first)


def test_without_guide_steps_it_is_ppo(tmp_path):
    """h = 0 from the start: the same updates, to the bit, as ppo.py (the teacher is switched off)."""
    run("ppo.py", "--total-timesteps", "384", "--run-name", "ppo", *TINY, cwd=tmp_path)
    run("ppo_jsrl.py", "--guide-steps-start", "0", "--teacher-eval-episodes", "0", "--planner", "rules",
        "--total-timesteps", "384", "--run-name", "jsrl", *TINY, cwd=tmp_path)
    ppo, jsrl = (_weights(tmp_path / f"runs/{name}/checkpoints/latest.pt") for name in ("ppo", "jsrl"))
    assert all(torch.equal(ppo[name], jsrl[name]) for name in ppo)


@pytest.mark.parametrize("args,message", [
    (["--planner", "gpt5"], "unknown planner 'gpt5'; valid planners: hf, openai, recorded, rules"),
    (["--curriculum-tolerance", "1.5"], "--curriculum-tolerance must be at least 0 and below 1, got 1.5"),
    (["--curriculum-window", "0"], "--curriculum-stages and --curriculum-window must be at least 1"),
    (["--teacher-eval-episodes", "0"], "--teacher-eval-episodes must be at least 1 unless --guide-steps-start"),
])
def test_bad_input_gets_a_clear_error(tmp_path, args, message):
    proc = run("ppo_jsrl.py", *args, "--total-timesteps", "256", *TINY, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
