"""pytest-benchmark suites for speed. Run all of them (and write the committed JSON) with:

    .venv/bin/python -m pytest benchmarks/ --benchmark-enable --benchmark-json benchmarks/results/speed.json

`test_wrapper_overhead` times 1,000 env steps with a uniformly random policy (a student early in
training) on the raw registered task and on the same task wrapped with the recorded teacher.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import teacher_wrappers
from teacher_wrappers import TeacherWrapper

STEPS = 1000


def make(task: str, planner: str | None):
    env = gym.make(f"TeacherWrappers/{task}-v0")
    return TeacherWrapper(env, planner=planner) if planner else env


def run_steps(env, actions):
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()


@pytest.mark.parametrize("task", teacher_wrappers.TASKS)
@pytest.mark.parametrize("planner", [None, "recorded", "rules"], ids=["raw", "recorded", "rules"])
def test_wrapper_overhead(benchmark, task, planner):
    env = make(task, planner)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 7, size=STEPS).tolist()
    benchmark.group = f"{STEPS} steps, {task}"
    benchmark.extra_info.update({"task": task, "planner": planner or "raw", "steps": STEPS})
    benchmark.pedantic(run_steps, args=(env, actions), rounds=5, iterations=1, warmup_rounds=1)
