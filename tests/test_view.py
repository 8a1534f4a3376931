"""teacher_wrappers.view: MiniGrid's observation without Grid objects must be exactly MiniGrid's."""

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Door, Key, Lava, Wall
from minigrid.minigrid_env import MiniGridEnv

import teacher_wrappers
from teacher_wrappers.memory import MemoryMap
from teacher_wrappers.view import _visible, fast_obs_applies, gen_obs, use_fast_obs


def assert_same_obs(env: MiniGridEnv, memories: tuple[MemoryMap, MemoryMap] | None = None) -> None:
    """The fast observation equals MiniGrid's; and the memory map merged from its cells equals the one
    merged from MiniGrid's image."""
    expected = MiniGridEnv.gen_obs(env)
    got = gen_obs(env)
    assert got.keys() == expected.keys()
    assert got["image"].dtype == expected["image"].dtype and got["image"].shape == expected["image"].shape
    assert np.array_equal(got["image"], expected["image"])
    assert got["direction"] == expected["direction"] and got["mission"] == expected["mission"]
    if memories is not None:
        fast, slow = memories
        fast.update(env, got["image"])
        slow.update(env, expected["image"])  # not the last view's image: merged from the image alone
        assert np.array_equal(fast.observation(), slow.observation())


def scramble(env, rng) -> None:
    """A random state of the task's objects and agent: doors open, closed or locked, something carried or
    not, the agent anywhere (even where it could never stand: a wall, a closed door)."""
    for door in getattr(env, "doors", []):
        door.is_open = bool(rng.random() < 0.4)
        door.is_locked = not door.is_open and bool(rng.random() < 0.5)
    env.carrying = (None, Key("red"), Ball("blue"))[int(rng.integers(3))]
    while True:
        x, y = int(rng.integers(env.width)), int(rng.integers(env.height))
        cell = env.grid.get(x, y)
        if cell is None or cell.can_overlap() or rng.random() < 0.1:
            break
    env.agent_pos, env.agent_dir = (x, y), int(rng.integers(4))


@pytest.mark.parametrize("task", teacher_wrappers.TASKS)
def test_fast_obs_is_minigrids_on_the_tasks(task):
    env = gym.make(f"TeacherWrappers/{task}-v0", disable_env_checker=True)
    base = env.unwrapped
    assert type(base).gen_obs is gen_obs  # the tasks use it
    rng = np.random.default_rng(0)
    seen = {"carrying": 0, "open door": 0, "lava": 0, "beyond the grid": 0}
    for seed in range(20):
        env.reset(seed=seed)
        memories = (MemoryMap(base.width, base.height), MemoryMap(base.width, base.height))
        assert_same_obs(base, memories)
        for _ in range(60):  # random actions (pickup, drop and toggle included)
            _, _, terminated, truncated, _ = env.step(int(rng.integers(7)))
            assert_same_obs(base, memories)
            if terminated or truncated:
                break
        for _ in range(30):  # random states
            scramble(base, rng)
            assert_same_obs(base, memories)
            image = base.gen_obs()["image"]
            seen["carrying"] += base.carrying is not None
            seen["open door"] += any(door.is_open for door in base.doors)
            seen["lava"] += bool((image[..., 0] == 9).any())
            seen["beyond the grid"] += bool(any(x < 0 or y < 0 or x >= base.width or y >= base.height
                                                for x, y in _view_world_cells(base)))
    assert all(seen[key] for key in ("carrying", "open door", "beyond the grid")), seen
    assert seen["lava"] or task != "LavaDoorKey", seen


def _view_world_cells(env):
    from teacher_wrappers.view import view_offsets

    dx, dy = view_offsets(env.agent_dir, env.agent_view_size)
    return zip((dx + env.agent_pos[0]).ravel().tolist(), (dy + env.agent_pos[1]).ravel().tolist())


SUITE = ["MiniGrid-Empty-5x5-v0",  # sees through walls
         "MiniGrid-DoorKey-5x5-v0", "MiniGrid-KeyCorridorS3R3-v0", "MiniGrid-LavaGapS5-v0", "BabyAI-GoToLocal-v0",
         "MiniGrid-ObstructedMaze-1Dlhb-v0", "MiniGrid-Fetch-5x5-N2-v0"]


@pytest.mark.parametrize("env_id", SUITE)
def test_fast_obs_is_minigrids_on_suite_envs(env_id):
    env = gym.make(env_id, disable_env_checker=True)
    assert use_fast_obs(env)
    base = env.unwrapped
    rng = np.random.default_rng(1)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        memories = (MemoryMap(base.width, base.height), MemoryMap(base.width, base.height))
        assert np.array_equal(obs["image"], MiniGridEnv.gen_obs(base)["image"])
        for _ in range(80):
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(7)))
            assert base.last_view.image is obs["image"]  # the installed gen_obs made it
            assert_same_obs(base, memories)
            if terminated or truncated:
                break


@pytest.mark.parametrize("size", [3, 5, 7])
def test_visibility_is_process_vis(size):
    rng = np.random.default_rng(size)
    for _ in range(300):
        grid, opaque = Grid(size, size), 0
        for i in range(size):
            for j in range(size):
                kind = rng.integers(5)
                obj = (None, None, Wall(), Door("red", is_open=bool(rng.random() < 0.5)), Lava())[kind]
                grid.set(i, j, obj)
                if obj is not None and not obj.see_behind():
                    opaque |= 1 << (i * size + j)
        expected = grid.process_vis(agent_pos=(size // 2, size - 1))
        assert np.array_equal(np.array(_visible(size, opaque)).reshape(size, size), expected)


def test_envs_with_their_own_observation_are_left_alone():
    class OwnObs(type(gym.make("MiniGrid-Empty-5x5-v0").unwrapped)):
        def gen_obs(self):
            return MiniGridEnv.gen_obs(self)

    env = OwnObs()
    assert not fast_obs_applies(env) and not use_fast_obs(env)
    assert "gen_obs" not in vars(env)


def test_copies_of_an_env_with_fast_obs_observe_the_same():
    env = gym.make("MiniGrid-DoorKey-5x5-v0", disable_env_checker=True)
    use_fast_obs(env)
    env.reset(seed=0)
    for other in (copy.deepcopy(env.unwrapped), pickle.loads(pickle.dumps(env.unwrapped))):
        for action in (0, 2, 2, 1, 2):
            a, *_ = env.unwrapped.step(action)
            b, *_ = other.step(action)
            assert np.array_equal(a["image"], b["image"])
        env.reset(seed=0)


def test_memory_map_survives_copies():
    env = gym.make("TeacherWrappers/SimpleDoorKey-v0", disable_env_checker=True)
    obs, _ = env.reset(seed=0)
    other = copy.deepcopy(env)
    for action in (0, 2, 2, 1, 2, 0, 0):
        obs, *_ = env.step(action)
        other_obs, *_ = other.step(action)
        assert np.array_equal(obs["image"], other_obs["image"])
    memory = env.get_wrapper_attr("memory_map")
    assert np.array_equal(pickle.loads(pickle.dumps(memory)).observation(), memory.observation())
