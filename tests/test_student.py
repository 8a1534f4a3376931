"""The student's pieces: the revisit count it observes, the success buffer and the Q-filtered target."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import teacher_wrappers  # noqa: F401  (registers the tasks)
from teacher_wrappers.distillation import SuccessBuffer, distillation_target
from teacher_wrappers.episodic import RevisitCount
from teacher_wrappers.student import Agent, student_env, student_obs

ROOT = Path(__file__).resolve().parents[1]
DONE = 6  # MiniGrid's no-op on these tasks


def test_revisit_count_counts_the_same_map_and_restarts_each_episode():
    env = RevisitCount(gym.make("TeacherWrappers/SimpleDoorKey-v0"))
    obs, _ = env.reset(seed=0)
    counts = [int(obs["revisits"][0])]
    for _ in range(3):  # the no-op shows the same memory map again
        obs, *_ = env.step(DONE)
        counts.append(int(obs["revisits"][0]))
    assert counts == [1, 2, 3, 4]
    obs, *_ = env.step(1)  # a turn shows a new heading: a map not seen before
    assert obs["revisits"][0] == 1
    assert env.reset(seed=0)[0]["revisits"][0] == 1
    assert env.observation_space.contains(obs)


def test_the_network_sees_the_revisit_count():
    env = student_env("TeacherWrappers/SimpleDoorKey-v0", visits=True)
    obs, _ = env.reset(seed=0)
    first = student_obs(obs)
    again = student_obs({**obs, "revisits": np.array([9], dtype=np.uint8)})
    assert first.shape == (10, 10, 5) and (again[..., :4] == first[..., :4]).all()
    torch.manual_seed(0)
    agent = Agent(first.shape, 7)
    with torch.no_grad():
        logits = agent.actor(agent.features(torch.as_tensor(np.stack([first, again]))))
    assert not torch.allclose(logits[0], logits[1])
    blind = student_env("TeacherWrappers/SimpleDoorKey-v0")
    assert student_obs(blind.reset(seed=0)[0]).shape == (10, 10, 4)


def test_success_buffer_keeps_the_newest_states():
    buffer = SuccessBuffer(5, (2,), 3)
    buffer.add(np.arange(8).repeat(2).reshape(8, 2).astype(np.uint8), np.eye(3, dtype=np.float32)[np.arange(8) % 3])
    assert buffer.size == 5
    assert sorted(buffer.obs[:, 0]) == [3, 4, 5, 6, 7]  # the oldest three went first
    torch.manual_seed(0)
    obs, teacher = buffer.sample(20, "cpu")
    assert obs.shape == (20, 2) and set(obs[:, 0].tolist()) <= {3, 4, 5, 6, 7}
    assert torch.equal(teacher.argmax(1), obs[:, 0].long() % 3)


def test_q_filter_drops_suggestions_valued_below_the_students_choice():
    target = distillation_target
    teacher = torch.tensor([[0.7, 0.3, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    logits = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # the student's choices: 2, 2, 0
    q = torch.tensor([[0.1, 0.9, 0.8], [0.2, 0.5, 0.9], [0.5, 0.48, 0.0]])
    assert torch.equal(target(teacher, logits, None, 0.05), teacher)
    filtered = target(teacher, logits, q, 0.05)
    assert torch.allclose(filtered[0], torch.tensor([0.0, 1.0, 0.0]))  # action 0 is valued well below action 2
    assert torch.equal(filtered[1], torch.zeros(3))  # nothing trusted: no distillation on this state
    assert torch.allclose(filtered[2], torch.tensor([0.5, 0.5, 0.0]))  # within the margin: both kept


def test_distillation_from_successes_fills_the_buffer(tmp_path):
    from test_algorithms import SUCCESSES, TINY, run, scalars

    run("ppo_teacher.py", *SUCCESSES, "--total-timesteps", "256", "--teacher-eval-episodes", "2", "--run-name", "s", *TINY,
        cwd=tmp_path)
    tags = scalars(tmp_path / "runs/s")
    assert tags["teacher/success_buffer_states"][-1] >= 8
    assert all(np.isfinite(tags["teacher/kl"]))
    summary = json.loads((tmp_path / "runs/s/summary.json").read_text())
    assert summary["args"]["distill_from"] == "successes" and summary["args"]["q_filter"]


def test_greedy_envs_are_reported_apart_from_the_sampled_ones(tmp_path):
    from test_algorithms import run, scalars

    run("ppo_teacher.py", "--greedy-fraction", "0.5", "--total-timesteps", "640", "--run-name", "g", "--num-envs", "4",
        "--num-steps", "160", "--eval-episodes", "1", "--teacher-eval-episodes", "2", "--no-progress", cwd=tmp_path)
    tags = scalars(tmp_path / "runs/g")
    summary = json.loads((tmp_path / "runs/g/summary.json").read_text())
    # 4 envs x 160 steps: each finished at least one episode (150 steps at most); 2 of them act greedily
    assert len(tags["charts/greedy_episodic_return"]) >= 2
    assert len(tags["charts/episodic_return"]) >= 2
    assert summary["learning_curve"]["episodes"][-1] == len(tags["charts/episodic_return"])
