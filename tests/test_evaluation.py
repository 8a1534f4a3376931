"""The vectorised evaluation (teacher_wrappers.training): same episodes as one-at-a-time play, and Ctrl-C stops it."""

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.constants import OBJECT_TO_IDX

import teacher_wrappers  # noqa: F401  (registers the tasks)
from teacher_wrappers import TeacherWrapper
from teacher_wrappers import training
from teacher_wrappers.student import student_env
from teacher_wrappers.training import play_episodes

ROOT = Path(__file__).resolve().parents[1]


def make_teacher_env():
    return TeacherWrapper(gym.make("TeacherWrappers/LavaDoorKey-v0"), planner="rules")


def teacher_argmax(obs):
    return obs["teacher_probs"].argmax(-1)


def one_at_a_time(seeds):
    env, returns = make_teacher_env(), []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(teacher_argmax(obs)))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return np.array(returns)


def test_vectorised_episodes_match_one_at_a_time_play():
    seeds = 500 + np.arange(7)
    # 3 sub-envs for 7 episodes: sub-envs restart on the next seed, and idle ones at the end
    returns = play_episodes([make_teacher_env] * 3, seeds, teacher_argmax)
    np.testing.assert_allclose(returns, one_at_a_time(seeds))
    assert (returns > 0).all()


def test_sub_envs_with_no_episode_left_stop():
    steps = []

    class Counted(gym.Wrapper):
        def step(self, action):
            steps.append(1)
            return self.env.step(action)

    seeds = 500 + np.arange(7)
    returns = play_episodes([lambda: Counted(make_teacher_env())] * 3, seeds, teacher_argmax)
    lengths = []  # each episode's steps, played alone
    for seed in seeds:
        env, done, count = make_teacher_env(), False, 0
        obs, _ = env.reset(seed=int(seed))
        while not done:
            obs, _, terminated, truncated, _ = env.step(int(teacher_argmax(obs)))
            done, count = terminated or truncated, count + 1
        lengths.append(count)
    assert len(steps) == sum(lengths)  # the episodes' own steps, no more
    np.testing.assert_allclose(returns, one_at_a_time(seeds))


def test_evaluation_stops_when_asked():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(KeyboardInterrupt):
        play_episodes([make_teacher_env] * 2, np.arange(50), teacher_argmax, stop)


def test_ctrl_c_during_the_final_evaluation_stops_it(tmp_path):
    args = [sys.executable, str(ROOT / "algorithms/ppo_teacher.py"), "--total-timesteps", "128", "--num-envs", "4",
            "--num-steps", "32", "--eval-episodes", "100000", "--teacher-eval-episodes", "2", "--run-name", "e",
            "--no-progress"]
    proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    try:
        line = ""
        while "evaluating" not in line:
            line = proc.stderr.readline()
            assert line, "the script ended before evaluating"
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted during the final evaluation" in stderr
    assert not (tmp_path / "runs/e/summary.json").exists()
    assert (tmp_path / "runs/e/checkpoints/latest.pt").exists()


def test_summary_compares_student_and_teacher_on_the_same_seeds(tmp_path):
    from helpers import run_script

    proc = run_script("ppo_teacher.py", "--planner", "rules", "--total-timesteps", "128", "--num-envs", "4",
                      "--num-steps", "32", "--eval-episodes", "6", "--teacher-eval-episodes", "2", "--run-name", "s",
                      "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs/s/summary.json").read_text())
    assert summary["teacher_eval_success_rate"] == 1.0  # the rules teacher solves SimpleDoorKey
    assert 0.1 < summary["teacher_eval_mean_return"] < 1.0


class CountSteps(gym.Wrapper):
    steps = 0

    def step(self, action):
        CountSteps.steps += 1
        return self.env.step(action)


def obs_policy(obs):
    """A deterministic policy of the observation alone that wanders (turns and steps chosen by a hash of the
    observation), picks up a key in front of it and opens a door in front of it with the key: it loops, and
    sometimes it succeeds."""
    actions = []
    for image in obs["image"]:
        x, y = np.argwhere(image[..., 3] > 0)[0]
        dx, dy = ((1, 0), (0, 1), (-1, 0), (0, -1))[image[x, y, 3] - 1]
        front, carrying = image[x + dx, y + dy, 0], image[x, y, 0] == OBJECT_TO_IDX["key"]
        if front == OBJECT_TO_IDX["key"] and not carrying:
            actions.append(3)  # pick up
        elif front == OBJECT_TO_IDX["door"] and carrying:
            actions.append(5)  # toggle
        else:
            actions.append(zlib.crc32(image.tobytes()) % 3)  # left, right, forward
    return np.array(actions)


@pytest.mark.parametrize("task", ["SimpleDoorKey", "LavaDoorKey"])
def test_loops_of_a_deterministic_policy_end_early_with_the_same_returns(task):
    env_fns = [lambda: CountSteps(gym.make(f"TeacherWrappers/{task}-v0"))] * 8
    seeds = np.arange(40)
    CountSteps.steps = 0
    full = play_episodes(env_fns, seeds, obs_policy)
    full_steps, CountSteps.steps = CountSteps.steps, 0
    cut = play_episodes(env_fns, seeds, obs_policy, stop_loops=True)
    np.testing.assert_array_equal(cut, full)
    assert 0 < (full > 0).sum() < len(seeds)  # some episodes succeed, some loop
    assert CountSteps.steps < full_steps / 2
    # a partial view repeats where the state does not: no loop is assumed there
    assert training.repeats_mean_loops(gym.make(f"TeacherWrappers/{task}-v0"))
    assert not training.repeats_mean_loops(gym.make(f"TeacherWrappers/{task}-v0", memory=False))
    assert not training.repeats_mean_loops(student_env("MiniGrid-Dynamic-Obstacles-5x5-v0"))
