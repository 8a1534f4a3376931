"""make_teacher_vector_env: teachers in the sub-env processes for planners that cost no LLM call."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from teacher_wrappers import Teacher, TeacherVectorWrapper, TeacherWorkersVectorEnv, make_teacher_vector_env
from teacher_wrappers.grouped import GroupedAsyncVectorEnv, make_vector_env
from teacher_wrappers.planners import RulesPlanner
from teacher_wrappers.planners.base import Planner
from teacher_wrappers.skills import DONE

SAME_STEP = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}


def env_fns(task: str, n: int):
    return [lambda: gym.make(f"TeacherWrappers/{task}-v0")] * n


def rollout(envs, steps: int, seed: int = 0):
    """teacher_probs of `steps` steps with actions drawn from them (so episodes make progress and end)."""
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=list(range(seed, seed + envs.num_envs)))
    seen, ends = [obs["teacher_probs"]], 0
    for _ in range(steps):
        probs = obs["teacher_probs"].astype(np.float64)
        actions = [rng.choice(len(p), p=p / p.sum()) for p in probs]
        obs, _, terminated, truncated, _ = envs.step(np.array(actions))
        seen.append(obs["teacher_probs"])
        ends += int(np.sum(terminated | truncated))
    return np.stack(seen), ends


@pytest.mark.parametrize("task,planner", [("ColoredDoorKey", "recorded"), ("TwoDoor", "rules")])
def test_teachers_in_workers_suggest_what_the_main_process_teacher_suggests(task, planner):
    sync = make_teacher_vector_env(env_fns(task, 2), planner=planner, asynchronous=False, **SAME_STEP)
    workers = make_teacher_vector_env(env_fns(task, 2), planner=planner, asynchronous=True, workers=2, **SAME_STEP)
    try:
        assert isinstance(sync, TeacherVectorWrapper) and isinstance(workers, TeacherWorkersVectorEnv)
        assert isinstance(workers.env, GroupedAsyncVectorEnv) and len(workers.env.groups) == 2
        (expected, ends), (got, _) = rollout(sync, 160), rollout(workers, 160)
        assert ends > 0  # past the end of some episodes: the autoreset keeps them in step
        np.testing.assert_allclose(got, expected, atol=1e-6)
        stats = workers.teacher_stats()
        assert sync.teacher_stats()["steps"] == stats["steps"] == 2 * 161
        assert stats["loop_breaks"] == sync.teacher_stats()["loop_breaks"]
        assert stats["teachers"] == 2 and stats["planner"] == planner and workers.teacher.planner.name == planner
    finally:
        sync.close()
        workers.close()


def test_switching_the_workers_teacher_off_and_restoring_its_state():
    envs = make_teacher_vector_env(env_fns("SimpleDoorKey", 2), planner="rules", asynchronous=True, workers=2,
                                   **SAME_STEP)
    try:
        obs, _ = envs.reset(seed=[0, 1])
        envs.step(np.array([0, 0]))
        state = envs.teacher_state_dict()
        visits = state["visits"]
        assert len(visits) == 2 and all(sum(counts.values()) == 2 for counts in visits)
        envs.teacher_enabled = False
        obs, *_ = envs.step(np.array([1, 1]))
        assert not obs["teacher_probs"].any() and envs.teacher_stats()["steps"] == 4
        envs.teacher_enabled = True
        obs, *_ = envs.step(np.array([0, 0]))
        assert np.allclose(obs["teacher_probs"].sum(axis=1), 1) and envs.teacher_stats()["steps"] == 6
        envs.load_teacher_state_dict({**state, "visits": [{b"x": 3}, {}]})
        assert envs.teacher_state_dict()["visits"] == [{b"x": 3}, {}] and envs.teacher_stats()["steps"] == 4
    finally:
        envs.close()


class LiveRules(RulesPlanner):
    live = True  # stands in for an LLM: must stay in the main process


def test_live_planners_keep_one_batched_teacher_in_the_main_process(monkeypatch):
    built, init = [], Teacher.__init__

    def counted_init(self, *args, **kwargs):
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Teacher, "__init__", counted_init)
    planner = LiveRules()
    envs = make_teacher_vector_env(env_fns("SimpleDoorKey", 2), planner=planner, asynchronous=True, **SAME_STEP)
    try:
        assert isinstance(envs, TeacherVectorWrapper) and isinstance(envs.env, GroupedAsyncVectorEnv)
        assert built == [envs.teacher] and envs.teacher.planner is planner  # one teacher, built once
        assert envs.teacher.text_style == "plain" and envs.teacher.idle_action == DONE  # the task's own
        obs, _ = envs.reset(seed=[0, 1])
        assert np.allclose(obs["teacher_probs"].sum(axis=1), 1) and envs.teacher.planner.queries >= 1
    finally:
        envs.close()


def test_a_vector_wrapper_takes_a_teacher_to_share():
    teacher = Teacher("rules", text_style="plain")
    envs = TeacherVectorWrapper(gym.vector.SyncVectorEnv(env_fns("SimpleDoorKey", 2)), planner=teacher)
    try:
        assert envs.teacher is teacher
        envs.reset(seed=[0, 1])
        assert teacher.stats.steps == 2
    finally:
        envs.close()


def test_planner_errors_surface_in_the_main_process():
    with pytest.raises(ValueError, match="valid planners"):
        make_teacher_vector_env(env_fns("SimpleDoorKey", 2), planner="llama", asynchronous=True)
    assert issubclass(LiveRules, Planner)


def test_ppo_teacher_async_envs_runs_the_teacher_in_the_workers(tmp_path):
    import json
    import os

    from helpers import run_script

    proc = run_script("ppo_teacher.py", "--async-envs", "--planner", "recorded", "--num-envs", "2", "--num-steps", "32",
                      "--total-timesteps", "64", "--eval-episodes", "1", "--no-progress", "--schedule", "reference",
                      "--run-name", "a", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((tmp_path / "runs/a/summary.json").read_text())["teacher_stats"]
    assert stats["teachers"] == min(2, len(os.sched_getaffinity(0))) and stats["steps"] >= 64
    assert stats["planner"] == "recorded"


def test_grouped_workers_step_like_one_sync_vector_env():
    fns = env_fns("LavaDoorKey", 5)
    sync = gym.vector.SyncVectorEnv(fns, **SAME_STEP)
    grouped = make_vector_env(fns, asynchronous=True, workers=2, **SAME_STEP)
    try:
        assert isinstance(grouped, GroupedAsyncVectorEnv) and [len(g) for g in grouped.groups] == [3, 2]
        assert grouped.observation_space == sync.observation_space and grouped.metadata == sync.metadata
        obs_s, _ = sync.reset(seed=7)
        obs_g, _ = grouped.reset(seed=7)
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(200):
            np.testing.assert_array_equal(obs_g["image"], obs_s["image"])
            actions = rng.integers(0, 7, size=5)
            obs_s, r_s, term_s, trunc_s, info_s = sync.step(actions)
            obs_g, r_g, term_g, trunc_g, info_g = grouped.step(actions)
            np.testing.assert_array_equal(r_g, r_s)
            np.testing.assert_array_equal(term_g | trunc_g, term_s | trunc_s)
            np.testing.assert_array_equal(info_g["success"], info_s["success"])
            if (term_s | trunc_s).any():  # the finished episodes' last observations, where SyncVectorEnv has them
                np.testing.assert_array_equal(info_g["_final_obs"], info_s["_final_obs"])
            ended += int((term_s | trunc_s).sum())
        assert ended > 0
        assert grouped.get_attr("text_style") == sync.get_attr("text_style")
        grouped.set_attr("spam", list(range(5)))
        assert grouped.get_attr("spam") == tuple(range(5))
        with pytest.raises(RuntimeError, match="worker failed"):
            grouped.call("no_such_method_here")
    finally:
        sync.close()
        grouped.close()


def test_teachers_in_grouped_workers_match_the_main_process_teacher():
    sync = make_teacher_vector_env(env_fns("SimpleDoorKey", 4), planner="rules", asynchronous=False, **SAME_STEP)
    grouped = make_teacher_vector_env(env_fns("SimpleDoorKey", 4), planner="rules", asynchronous=True, workers=2,
                                      **SAME_STEP)
    try:
        (expected, _), (got, _) = rollout(sync, 160), rollout(grouped, 160)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        stats = grouped.teacher_stats()
        assert stats["teachers"] == 2 and stats["steps"] == 4 * 161  # one teacher per worker, for its sub-envs
        grouped.teacher_enabled = False
        obs, *_ = grouped.step(np.zeros(4, dtype=int))
        assert not obs["teacher_probs"].any()
    finally:
        sync.close()
        grouped.close()
