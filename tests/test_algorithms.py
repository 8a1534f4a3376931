"""The algorithm scripts with tiny budgets, as CleanRL tests its scripts.

Most runs happen in this process (helpers.run_script: the same outputs, without ~20 s of imports per run). Runs
as a user makes them, each in its own process: ppo_teacher.py here (the teacher's logs) and Ctrl-C of ppo.py; the
sweeps of tests/test_sweep.py run ppo.py to its summary, tests/test_resume_and_cli.py crashes it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_script, scalars

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-envs", "4", "--num-steps", "32", "--eval-episodes", "1", "--no-progress"]


def run(script, *args, cwd, check=True, env=None):
    """The script in this process, as `python algorithms/<script> ARGS` would run it (tests/helpers.py)."""
    proc = run_script(script, *args, cwd=cwd, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_process(script, *args, cwd, timeout=300):
    """The script as a user runs it: its own process, on this checkout's library."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, str(ROOT / "algorithms" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ppo_baseline_writes_summary_tensorboard_and_video(tmp_path):
    run("ppo.py", "--total-timesteps", "256", "--run-name", "base", "--capture-video", *TINY, cwd=tmp_path)
    summary = json.loads((tmp_path / "runs/base/summary.json").read_text())
    assert summary["env_id"] == "TeacherWrappers/SimpleDoorKey-v0" and summary["method"] == "ppo"
    assert summary["frames"] == 256 and summary["seed"] == 1 and summary["sps"] > 0
    assert 0.0 <= summary["eval_success_rate"] <= 1.0 and summary["eval_episodes"] == 1
    assert len(summary["learning_curve"]["frames"]) == len(summary["learning_curve"]["success_rate"]) == 2
    tags = scalars(tmp_path / "runs/base")
    assert {"charts/SPS", "charts/success_rate", "losses/value_loss", "losses/approx_kl"} <= set(tags)
    assert (tmp_path / "runs/base/checkpoints/latest.pt").exists()
    assert list((tmp_path / "videos/base").glob("*.mp4"))  # --capture-video records episodes


def test_ppo_teacher_logs_the_teacher(tmp_path):
    run_process("ppo_teacher.py", "--env-id", "TeacherWrappers/ColoredDoorKey-v0", "--planner", "rules",
                "--total-timesteps", "256", "--run-name", "t", "--teacher-eval-episodes", "2", *TINY, cwd=tmp_path)
    summary = json.loads((tmp_path / "runs/t/summary.json").read_text())
    assert summary["planner"] == "rules" and summary["schedule"] == "adaptive"
    assert summary["teacher_alone_return"] > 0.5  # the rules teacher solves ColoredDoorKey
    assert summary["teacher_stats"]["queries"] > 0
    tags = scalars(tmp_path / "runs/t")
    assert {"teacher/lambda", "teacher/kl", "teacher/agreement", "teacher/queries", "teacher/cache_hits",
            "charts/success_rate"} <= set(tags)
    assert tags["teacher/lambda"][0] == pytest.approx(10.0)


def test_distillation_pulls_the_student_towards_the_teacher(tmp_path):
    run("ppo_teacher.py", "--schedule", "reference", "--total-timesteps", "1280", "--run-name", "d",
        "--num-envs", "8", "--num-steps", "16", "--learning-rate", "2e-3", "--no-anneal-lr", "--eval-episodes", "1",
        "--no-progress", cwd=tmp_path)
    agreement = scalars(tmp_path / "runs/d")["teacher/agreement"]
    kl = scalars(tmp_path / "runs/d")["teacher/kl"]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    # The student starts near uniform; the teacher term alone moves its argmax onto the teacher's.
    assert mean(agreement[-5:]) > mean(agreement[:5]) + 0.05, agreement
    assert mean(kl[-5:]) < 0.85 * mean(kl[:3]), kl


def _weights(path):
    return torch.load(path, weights_only=False)["agent"]


# The success buffer and the Q-filter carry state across iterations: plain MiniGrid Empty, where even a
# random student succeeds often, fills the buffer within the budget.
SUCCESSES = ["--env-id", "MiniGrid-Empty-5x5-v0", "--planner", "rules", "--distill-from", "successes",
             "--success-buffer-min", "8", "--q-filter"]


# the teacher goes off after the first iteration (of 128 frames); then the buffer takes the student's own successes
SELF_IMITATION = SUCCESSES + ["--self-imitation", "0.5", "--linear-frames", "128"]


TIMING = ("planner_seconds", "seconds_per_query")  # wall-clock time: never equal between two runs


# The recurrent student: its state carried across the checkpoint, whole episodes in the success buffer, a greedy env.
LSTM = ["--student", "lstm", "--greedy-fraction", "0.25"]


# a resumed run continues exactly: in sync envs, in worker processes (--async-envs), with the teacher's
# state (counters, answers, the texts its table lacks), the success buffer and the recurrent student's state
# (ppo.py's feed-forward student: ppo-async; sync envs: the ppo_teacher.py runs)
@pytest.mark.parametrize("script,extra", [("ppo.py", LSTM), ("ppo_teacher.py", []), ("ppo_teacher.py", SUCCESSES),
                                          ("ppo.py", ["--async-envs"]), ("ppo_teacher.py", ["--async-envs"]),
                                          ("ppo_teacher.py", ["--planner", "recorded", "--recorded-path", "GAPPY"]),
                                          ("ppo_teacher.py", SUCCESSES + LSTM), ("ppo_teacher.py", SELF_IMITATION)],
                         ids=["ppo-lstm", "ppo_teacher", "successes", "ppo-async", "teacher-async", "recorded-gaps",
                              "successes-lstm", "self-imitation"])
def test_resume_matches_an_uninterrupted_run(tmp_path, script, extra, request):
    if "GAPPY" in extra:
        extra = [request.getfixturevalue("gappy_table") if arg == "GAPPY" else arg for arg in extra]
    common = ["--total-timesteps", "384", "--checkpoint-every", "2", "--teacher-eval-episodes", "2"
              ] if script == "ppo_teacher.py" else ["--total-timesteps", "384", "--checkpoint-every", "2"]
    common += extra
    run(script, *common, "--run-name", "full", *TINY, cwd=tmp_path)
    full = tmp_path / "runs/full"
    uninterrupted = _weights(full / "checkpoints/latest.pt")
    summary = json.loads((full / "summary.json").read_text())
    curve = summary["learning_curve"]
    (full / "summary.json").unlink()
    run(script, *common, "--resume", str(full / "checkpoints/iter_000002.pt"), *TINY, cwd=tmp_path)
    resumed = _weights(full / "checkpoints/latest.pt")
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)
    again = json.loads((full / "summary.json").read_text())
    assert again["learning_curve"]["success_rate"] == curve["success_rate"]
    assert again["eval_curve"] == summary["eval_curve"] and len(summary["eval_curve"]["frames"]) == 3  # 2 + final
    if script == "ppo_teacher.py":  # the teacher counted as if never stopped
        stats = {key: value for key, value in summary["teacher_stats"].items() if key not in TIMING}
        assert stats == {key: value for key, value in again["teacher_stats"].items() if key not in TIMING}
        assert stats["queries"] > 0 and (stats["steps"] > 384 or "--self-imitation" in extra)  # (its teacher stops)
        if "--recorded-path" in extra:
            assert stats["unknown_texts"] > 0 and stats["cache_hits"] < stats["steps"]


def test_ctrl_c_writes_a_checkpoint_to_resume_from(tmp_path):
    args = [sys.executable, str(ROOT / "algorithms/ppo.py"), "--total-timesteps", "10000000", "--run-name", "long",
            "--checkpoint-every", "0", *TINY]
    proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.time() + 120
        events = tmp_path / "runs/long"
        while time.time() < deadline and not any(events.glob("events.*")):
            time.sleep(0.5)
        time.sleep(1)  # into the first iterations (Ctrl-C is caught from the start of training)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "continue with --resume" in stderr
    state = torch.load(tmp_path / "runs/long/checkpoints/latest.pt", weights_only=False)
    assert state["iteration"] >= 1 and state["global_step"] == state["iteration"] * 4 * 32


@pytest.mark.parametrize("script,args,message", [  # every other check: test_training.py
    ("ppo_teacher.py", ["--planner", "gpt5"], "unknown planner 'gpt5'; valid planners: hf, openai, recorded, rules"),
    ("ppo_teacher.py", ["--distill-from", "everything"], "unknown --distill-from 'everything'"),
])
def test_bad_input_gets_a_clear_error(tmp_path, script, args, message):
    proc = run(script, *args, "--total-timesteps", "256", *TINY, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_distillation_schedules():
    from teacher_wrappers.distillation import AdaptiveSchedule, LinearSchedule, ReferenceSchedule, make_schedule

    reference = ReferenceSchedule(start=10.0, decay=0.005, floor=0.1, off_iteration=3000)
    assert [reference(i) for i in (1, 2, 1981, 2500, 3000)] == pytest.approx([10, 9.995, 0.1, 0.1, 0])
    linear = LinearSchedule(start=10.0, frames=1000)
    assert [linear(1, f) for f in (0, 500, 1000, 5000)] == pytest.approx([10, 5, 0, 0])
    adaptive = AdaptiveSchedule(start=10.0, frames=1000)
    assert adaptive(1, 0, None, 0.8) == 10  # no episodes yet
    assert adaptive(1, 0, 0.2, 0.8) == pytest.approx(7.5)  # the student trails the teacher
    assert adaptive(1, 0, 0.9, 0.8) == 0  # it passed the teacher
    assert adaptive(1, 500, 0.2, 0.8) == pytest.approx(3.75)  # and the deadline halves it
    assert adaptive(1, 1000, 0.2, 0.8) == 0
    assert make_schedule("linear", start=10.0, frames=1000) == linear
    assert make_schedule("reference", 10.0, 0.005, 0.1, 3000) == reference
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        make_schedule("cosine")


def test_distillation_loss_is_the_weighted_kl_and_pulls_towards_the_teacher():
    from teacher_wrappers.distillation import distillation_loss

    teacher = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 0.0]])  # a row of zeros (teacher off) adds nothing
    logits = torch.zeros(2, 3, requires_grad=True)
    expected = (0.7 * np.log(0.7 / (1 / 3)) + 0.3 * np.log(0.3 / (1 / 3))) / 2
    assert distillation_loss(logits, teacher, 2.0).item() == pytest.approx(2 * expected, rel=1e-5)
    assert distillation_loss(logits, teacher, 0.0).item() == 0
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(200):
        optimizer.zero_grad()
        distillation_loss(logits, teacher, 1.0).backward()
        optimizer.step()
    assert torch.softmax(logits[0], -1)[:2].tolist() == pytest.approx([0.7, 0.3], abs=0.02)
    assert logits[1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="teacher_probs has shape"):
        distillation_loss(logits, teacher[:, :2], 1.0)


def test_the_student_sees_the_mission_on_babyai():
    import gymnasium as gym

    from teacher_wrappers import MemoryMapObservation
    from teacher_wrappers.mission import encode, parse_mission
    from teacher_wrappers.student import Agent, student_obs

    obs, _ = MemoryMapObservation(gym.make("BabyAI-GoToObj-v0")).reset(seed=0)
    x = torch.as_tensor(student_obs(obs))
    assert x.shape == (obs["image"].shape[0] + 1,) + obs["image"].shape[1:]
    torch.manual_seed(0)
    agent = Agent(tuple(x.shape), 7, mission=True)
    other = dict(obs, mission=encode(parse_mission("go to the blue key")))
    batch = torch.stack([x, torch.as_tensor(student_obs(other))])
    features = agent.features(batch)
    assert not torch.allclose(features[0], features[1])  # same map, another mission: another input
    assert np.array_equal(student_obs({"image": obs["image"]}), obs["image"])  # no mission: the map alone


def test_ppo_teacher_trains_on_babyai_with_the_suite_teacher(tmp_path, monkeypatch):
    run("ppo_teacher.py", "--env-id", "BabyAI-GoToObj-v0", "--planner", "rules", "--total-timesteps", "256",
        "--run-name", "b", "--teacher-eval-episodes", "4", "--visits", *TINY, cwd=tmp_path)
    summary = json.loads((tmp_path / "runs/b/summary.json").read_text())
    assert summary["teacher_alone_return"] > 0.5  # the suite's rules teacher solves GoToObj
    assert summary["teacher_stats"]["unparsed_steps"] == 0

    # the GIF renderer shows this student through the observation it was trained on: map, mission, revisits
    from benchmarks import render_gifs

    agent, settings = render_gifs.load_student(tmp_path / "runs/b")
    assert agent.mission and agent.counts and settings["env_id"] == "BabyAI-GoToObj-v0"
    seen, act = [], agent.act
    monkeypatch.setattr(agent, "act", lambda obs: seen.append(sorted(obs)) or act(obs))
    frames = render_gifs.play(agent, "BabyAI-GoToObj-v0", 1, settings["eval_seed"], 8, visits=True, tries=3)
    assert seen and all(keys == ["image", "mission", "revisits"] for keys in seen), seen[:1]
    assert all(frame.size == frames[0].size for frame in frames)
    written = render_gifs.main(render_gifs.Args(runs=str(tmp_path / "runs"), out=str(tmp_path / "gifs"), episodes=1,
                                                tries=3))  # the same episodes: a GIF if and only if one was solved
    assert written == ([tmp_path / "gifs/BabyAI-GoToObj.gif"] if frames else [])


@pytest.mark.xdist_group("llm")  # with the other LLM tests: transformers imported in one worker
def test_the_llm_bill_counts_every_live_answer_of_a_run(tmp_path):
    """Warm-up (the adaptive schedule's teacher alone), training and the final teacher-alone evaluation each
    have their own teacher; the bill counts the answers of all of them: as many as the fresh cache received."""
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    from llm_fixtures import build_tiny_model

    from teacher_wrappers.cache import AnswerCache

    model = build_tiny_model(tmp_path / "tiny-llama")
    cache = tmp_path / "answers.sqlite"
    run("ppo_teacher.py", "--planner", "hf", "--model", str(model), "--planner-mode", "score", "--total-timesteps", "64",
        "--run-name", "bill", "--teacher-eval-episodes", "1", "--num-envs", "2", "--num-steps", "32", "--eval-episodes",
        "1", "--no-progress", cwd=tmp_path, env={"TEACHER_WRAPPERS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    summary = json.loads((tmp_path / "runs/bill/summary.json").read_text())
    answers = len(AnswerCache(cache).rows())
    assert summary["llm_calls"] == answers > summary["teacher_stats"]["llm_calls"]  # not the training teacher's alone
    assert summary["llm_requests"] == answers  # score mode: one forward pass per text
    assert summary["llm_prompt_tokens"] > 0 and summary["llm_completion_tokens"] == 0 and summary["llm_seconds"] > 0
    tags = scalars(tmp_path / "runs/bill")
    assert tags["teacher/llm_calls"][-1] <= answers and tags["teacher/llm_requests"][-1] > 0


def test_evaluations_during_training_leave_the_training_as_it_was(tmp_path):
    common = ["--total-timesteps", "512", *SUCCESSES, "--teacher-eval-episodes", "2", *TINY]
    run("ppo_teacher.py", *common, "--eval-points", "4", "--run-name", "curve", cwd=tmp_path)
    run("ppo_teacher.py", *common, "--eval-points", "0", "--run-name", "none", cwd=tmp_path)
    curve, none = (json.loads((tmp_path / f"runs/{name}/summary.json").read_text()) for name in ("curve", "none"))
    assert curve["eval_curve"]["frames"] == [128, 256, 384, 512]  # 3 during training, then the final one
    assert curve["eval_curve"]["success_rate"][-1] == curve["eval_success_rate"]
    assert none["eval_curve"] == {"frames": [], "success_rate": [], "mean_return": []}
    weights = [_weights(tmp_path / f"runs/{name}/checkpoints/latest.pt") for name in ("curve", "none")]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert "eval/curve_success_rate" in scalars(tmp_path / "runs/curve")


def test_once_the_teacher_is_off_the_buffer_takes_the_students_own_actions(tmp_path):
    for name, weight in (("own", "0.5"), ("off", "0")):
        run("ppo_teacher.py", "--total-timesteps", "1024", *SUCCESSES, "--self-imitation", weight,
            "--linear-frames", "128", "--teacher-eval-episodes", "2", "--run-name", name, *TINY, cwd=tmp_path)
    buffers = {name: torch.load(tmp_path / f"runs/{name}/checkpoints/latest.pt", weights_only=False)["state"]["successes"]
               for name in ("own", "off")}
    own = buffers["own"]["teacher"][: buffers["own"]["size"]]
    one_hot = (own.max(1) == 1.0) & (own.sum(1) == 1.0)
    assert one_hot.any() and not one_hot.all()  # the teacher's suggestions first, then the actions taken
    assert buffers["own"]["size"] > buffers["off"]["size"]  # without self-imitation the buffer stops with the teacher
    kl = scalars(tmp_path / "runs/own")["teacher/kl"]
    assert kl[-1] > 0 and scalars(tmp_path / "runs/off")["teacher/kl"][-1] == 0  # imitated, or not at all
