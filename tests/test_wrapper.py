import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from helpers import run_teacher

import teacher_wrappers
from teacher_wrappers import MemoryMapObservation, TeacherVectorWrapper, TeacherWrapper
from teacher_wrappers.envs import SimpleDoorKeyEnv
from teacher_wrappers.planners import RulesPlanner


def test_user_quick_start():
    env = TeacherWrapper(gym.make("TeacherWrappers/SimpleDoorKey-v0"), planner="recorded")
    obs, info = env.reset(seed=0)
    probs = obs["teacher_probs"]
    assert probs.dtype == np.float32 and probs.shape == (7,)
    assert probs.sum() == pytest.approx(1.0) and (probs >= 0).all()
    assert {"text", "plan", "option", "cache_hit"} <= set(info["teacher"])
    assert info["teacher"]["text"].startswith("Agent sees")
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("task", teacher_wrappers.TASKS)
@pytest.mark.parametrize("planner", ["rules", "recorded"])
def test_teachers_solve_the_tasks(task, planner):
    env = TeacherWrapper(gym.make(f"TeacherWrappers/{task}-v0"), planner=planner)
    # Small-budget versions of the committed 500-episode figures (benchmarks/results/teacher_eval.md).
    floor = {"ColoredDoorKey": 0.45 if planner == "recorded" else 0.9, "TwoDoor": 0.75}.get(task, 0.9)
    assert run_teacher(env, 20) >= floor
    stats = env.teacher_stats()
    assert stats["steps"] > 0 and stats["queries"] == len(env.teacher.memo)  # each distinct text asked once


def test_lava_is_never_entered_by_the_rules_teacher():
    def not_on_lava(env):
        cell = env.unwrapped.grid.get(*env.unwrapped.agent_pos)
        assert cell is None or cell.type != "lava"

    env = TeacherWrapper(gym.make("TeacherWrappers/LavaDoorKey-v0"), planner="rules")
    assert run_teacher(env, 30, on_episode_end=not_on_lava) == 1.0


def test_planner_object_and_kwargs():
    env = TeacherWrapper(gym.make("TeacherWrappers/ColoredDoorKey-v0"), planner=RulesPlanner())
    env.reset(seed=0)
    assert env.teacher.planner.name == "rules" and env.teacher.text_style == "colored"
    env = TeacherWrapper(gym.make("TeacherWrappers/LavaDoorKey-v0"), planner="recorded",
                         planner_kwargs={"table": "SimpleDoorKey"})
    assert env.teacher.planner.table_name == "SimpleDoorKey"
    with pytest.raises(ValueError, match="valid planners"):
        TeacherWrapper(gym.make("TeacherWrappers/SimpleDoorKey-v0"), planner="llama")


def test_passes_the_gymnasium_env_checker():
    check_env(TeacherWrapper(MemoryMapObservation(SimpleDoorKeyEnv())), skip_render_check=True)


def test_plain_minigrid_doorkey_with_the_rules_teacher_reaches_the_goal():
    env = TeacherWrapper(gym.make("MiniGrid-DoorKey-8x8-v0"), planner="rules")
    obs, info = env.reset(seed=0)
    assert set(obs) == {"image", "direction", "mission", "teacher_probs"}  # the user's obs is kept
    assert run_teacher(env, 10) >= 0.9
    for env_id in ["MiniGrid-Unlock-v0", "MiniGrid-DoorKey-16x16-v0"]:
        assert run_teacher(TeacherWrapper(gym.make(env_id), planner="rules"), 5) >= 0.8


def test_rejects_non_dict_observations_and_non_minigrid_envs():
    from minigrid.wrappers import ImgObsWrapper

    with pytest.raises(TypeError, match="Dict observation"):
        TeacherWrapper(ImgObsWrapper(gym.make("MiniGrid-DoorKey-5x5-v0")))
    with pytest.raises(TypeError, match="MiniGrid"):
        TeacherWrapper(gym.make("CartPole-v1"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_scalar_wrapper_inside_vector_envs(mode):
    envs = gym.make_vec("TeacherWrappers/SimpleDoorKey-v0", num_envs=2, vectorization_mode=mode,
                        wrappers=[lambda env: TeacherWrapper(env, planner="rules")])
    obs, _ = envs.reset(seed=0)
    assert obs["teacher_probs"].shape == (2, 7)
    for _ in range(5):
        obs, *_ = envs.step(obs["teacher_probs"].argmax(axis=1))
    assert np.allclose(obs["teacher_probs"].sum(axis=1), 1.0)
    envs.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_wrapper_batches_planner_calls(mode):
    calls = []

    class CountingPlanner(RulesPlanner):
        def plan(self, texts, style="plain"):
            calls.append(len(texts))
            return super().plan(texts, style)

    envs = TeacherVectorWrapper(gym.make_vec("TeacherWrappers/ColoredDoorKey-v0", num_envs=4,
                                             vectorization_mode=mode), planner=CountingPlanner())
    obs, _ = envs.reset(seed=0)
    assert envs.teacher.text_style == "colored"
    successes = episodes = 0
    for _ in range(400):
        obs, rewards, terminations, truncations, _ = envs.step(obs["teacher_probs"].argmax(axis=1))
        successes += int((rewards > 0).sum())
        episodes += int((terminations | truncations).sum())
    # One call per step at most, only for new texts, each text once, several sub-envs per call.
    assert sum(calls) == len(envs.teacher.memo) and max(calls) > 1
    assert episodes > 0 and successes / episodes >= 0.9
    assert len(envs.last_infos) == 4 and envs.teacher_stats()["steps"] == 401 * 4
    envs.close()


def test_identical_states_get_identical_suggestions_across_wrappers():
    a = TeacherWrapper(gym.make("TeacherWrappers/TwoDoor-v0"), planner="recorded")
    b = TeacherWrapper(gym.make("TeacherWrappers/TwoDoor-v0"), planner="recorded")
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    for action in [0, 2, 2, 1, 2, 2, 2]:
        assert np.array_equal(obs_a["teacher_probs"], obs_b["teacher_probs"])
        obs_a, *_ = a.step(action)
        obs_b, *_ = b.step(action)
