"""TeacherWrapper and MemoryMapObservation record their constructor arguments: specs round-trip."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import teacher_wrappers  # noqa: F401  (registers the tasks)
from teacher_wrappers import MemoryMapObservation, TeacherWrapper

IDS = ["TeacherWrappers/LavaDoorKey-v0", "MiniGrid-DoorKey-5x5-v0"]


def _rollout(env, seed=3, steps=20):
    """Observations of a fixed action sequence: two envs built from the same spec must agree."""
    obs, _ = env.reset(seed=seed)
    seen = [obs["teacher_probs"].copy()]
    for step in range(steps):
        obs, _, terminated, truncated, _ = env.step(step % 3)
        seen.append(obs["teacher_probs"].copy())
        if terminated or truncated:
            break
    return np.stack(seen)


@pytest.mark.parametrize("env_id", IDS)
def test_spec_make_and_gym_make_rebuild_the_teacher(env_id):
    env = TeacherWrapper(gym.make(env_id), planner="rules")
    assert env.spec.additional_wrappers[-1].kwargs == {"planner": "rules", "planner_kwargs": None, "text_style": None}
    for rebuilt in (env.spec.make(), gym.make(env.spec)):
        assert isinstance(rebuilt, TeacherWrapper) and rebuilt.teacher.planner.name == "rules"
        assert np.array_equal(_rollout(rebuilt), _rollout(env))
        rebuilt.close()
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes_on_a_wrapped_env(env_id):
    check_env(TeacherWrapper(gym.make(env_id)), skip_render_check=True)


def test_memory_map_observation_round_trips():
    env = MemoryMapObservation(gym.make("MiniGrid-DoorKey-5x5-v0"))
    rebuilt = env.spec.make()
    assert isinstance(rebuilt, MemoryMapObservation)
    assert np.array_equal(rebuilt.reset(seed=1)[0]["image"], env.reset(seed=1)[0]["image"])
    check_env(MemoryMapObservation(gym.make("MiniGrid-DoorKey-5x5-v0")), skip_render_check=True)


def test_a_planner_object_is_shared_not_copied():
    from teacher_wrappers.planners import RulesPlanner

    planner = RulesPlanner()
    env = TeacherWrapper(gym.make("MiniGrid-DoorKey-5x5-v0"), planner=planner)
    assert env.spec.make().teacher.planner is planner
