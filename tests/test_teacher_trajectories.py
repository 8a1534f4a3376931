"""The teacher gives the same suggestions as the teacher recorded in tests/data (before its speed-ups).

The fixture holds memory maps, actions and teacher probabilities of mixed teacher/random
trajectories on every task with the recorded and the rules planners (see make_teacher_trajectories.py).
Replaying the actions must reproduce the maps (the environments are unchanged) and the probabilities.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import teacher_wrappers
from teacher_wrappers import TeacherVectorWrapper, TeacherWrapper

FIXTURE = np.load(Path(__file__).parent / "data" / "teacher_trajectories.npz")
CASES = sorted({tuple(name.split("/")[:3]) for name in FIXTURE.files})


def recorded(task, planner, seed):
    return {name: FIXTURE[f"{task}/{planner}/{seed}/{name}"] for name in ("images", "probs", "actions", "resets")}


def test_fixture_covers_every_task_planner_and_loops():
    assert {(task, planner) for task, planner, _ in CASES} == {
        (task, planner) for task in teacher_wrappers.TASKS for planner in ("recorded", "rules")}
    key = teacher_wrappers.styles.paper.KEY
    for case in CASES:  # every trajectory carries a key at some point
        images = recorded(*case)["images"]
        assert (images[..., 0][images[..., 3] > 0] == key).any(), case


@pytest.mark.parametrize("task,planner,seed", CASES)
def test_wrapper_matches_the_recorded_teacher(task, planner, seed):
    data = recorded(task, planner, seed)
    env = TeacherWrapper(gym.make(f"TeacherWrappers/{task}-v0"), planner=planner)
    episode, loop_breaks = 0, 0
    for step, action in enumerate(data["actions"]):
        if step in data["resets"]:
            obs, info = env.reset(seed=int(seed) + 100 * episode)
            loop_breaks += bool(info["teacher"].get("loop_break"))
            episode += 1
        np.testing.assert_array_equal(obs["image"], data["images"][step], err_msg=f"map differs at step {step}")
        assert np.allclose(obs["teacher_probs"], data["probs"][step], atol=1e-6), (
            f"{task}/{planner}/{seed} step {step}: {obs['teacher_probs']} != {data['probs'][step]} ({info['teacher']})")
        obs, _, _, _, info = env.step(int(action))
        loop_breaks += bool(info["teacher"].get("loop_break"))
    assert env.teacher_stats()["loop_breaks"] == loop_breaks


@pytest.mark.parametrize("task", teacher_wrappers.TASKS)
def test_vector_wrapper_matches_the_recorded_teacher(task):
    """The batched teacher gives each sub-env the suggestion the single-env teacher gave."""
    seeds = [int(seed) for t, p, seed in CASES if t == task and p == "recorded"]
    data = [recorded(task, "recorded", seed) for seed in seeds]
    steps = min(int(d["resets"][1]) if len(d["resets"]) > 1 else len(d["actions"]) for d in data)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(f"TeacherWrappers/{task}-v0")] * len(seeds))
    envs = TeacherVectorWrapper(envs, planner="recorded")
    obs, _ = envs.reset(seed=seeds)
    for step in range(steps):
        expected = np.stack([d["probs"][step] for d in data])
        assert np.allclose(obs["teacher_probs"], expected, atol=1e-6), f"{task} step {step}"
        if step + 1 < steps:
            obs, *_ = envs.step(np.array([d["actions"][step] for d in data]))
