"""Wrapper overhead: TeacherWrapper over the raw registered task, as a ratio measured in one run.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python -m pytest benchmarks/speed -n 0 --benchmark-enable \
        --benchmark-json benchmarks/results/speed.json
    .venv/bin/python -m benchmarks.speed.report        # benchmarks/results/speed.md from the JSON

Each round builds a fresh raw env and a fresh wrapped env (so the teacher starts cold, with empty
memos, as in a new training run), resets both with the round's seed and plays the same uniformly
random actions (a student early in training) on both, alternating chunks of CHUNK steps so that both
see the same machine load. Times are CPU seconds of this process (`time.process_time`): other
processes on a shared machine do not count. The overhead is wrapped / raw - 1 per round; the median
over the rounds goes to the report. Only ratios of the same run are meaningful.
"""

from __future__ import annotations

import statistics
import time

import gymnasium as gym
import numpy as np
import pytest

import teacher_wrappers
from teacher_wrappers import TeacherWrapper

STEPS = 5000  # per env and round
CHUNK = 250
ROUNDS = 5


def play(env, actions) -> float:
    """CPU seconds to play `actions` (resetting at episode ends)."""
    start = time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return time.process_time() - start


def overhead_round(task: str, planner: str, seed: int, actions: list[int]) -> tuple[float, float]:
    """(raw, wrapped) CPU seconds per step over STEPS steps, played in alternating chunks."""
    raw = gym.make(f"TeacherWrappers/{task}-v0")
    wrapped = TeacherWrapper(gym.make(f"TeacherWrappers/{task}-v0"), planner=planner)
    raw.reset(seed=seed)
    wrapped.reset(seed=seed)
    raw_seconds = wrapped_seconds = 0.0
    for start in range(0, len(actions), CHUNK):
        chunk = actions[start:start + CHUNK]
        raw_seconds += play(raw, chunk)
        wrapped_seconds += play(wrapped, chunk)
    return raw_seconds / len(actions), wrapped_seconds / len(actions)


@pytest.mark.parametrize("task", teacher_wrappers.TASKS)
@pytest.mark.parametrize("planner", ["recorded", "rules"])
def test_wrapper_overhead(benchmark, task, planner):
    actions = np.random.default_rng(0).integers(0, 7, size=STEPS).tolist()
    rounds: list[tuple[float, float]] = []
    seeds = iter(range(ROUNDS + 1))

    def one_round(seed):
        rounds.append(overhead_round(task, planner, seed, actions))

    benchmark.group = "wrapper overhead"
    benchmark.pedantic(one_round, setup=lambda: ((next(seeds),), {}), rounds=ROUNDS, iterations=1)
    overheads = [wrapped / raw - 1 for raw, wrapped in rounds]
    benchmark.extra_info.update({
        "task": task, "planner": planner, "steps": STEPS, "chunk": CHUNK, "rounds": ROUNDS,
        "raw_us_per_step": 1e6 * statistics.median(raw for raw, _ in rounds),
        "wrapped_us_per_step": 1e6 * statistics.median(wrapped for _, wrapped in rounds),
        "overhead": statistics.median(overheads), "overhead_min": min(overheads), "overhead_max": max(overheads),
    })
    assert all(raw > 0 and wrapped > 0 for raw, wrapped in rounds)
