import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from minigrid.core.constants import OBJECT_TO_IDX
from minigrid.core.world_object import Key

import teacher_wrappers  # noqa: F401
from teacher_wrappers.envs import SimpleDoorKeyEnv
from teacher_wrappers.memory import MemoryMap, MemoryMapObservation, partial_view


def random_walk(env, steps, seed=0):
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
        if terminated or truncated:
            break
        yield obs


@pytest.mark.parametrize("task", ["SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey", "TwoDoor"])
def test_memory_map_matches_the_true_grid_on_every_seen_cell(task):
    env = gym.make(f"TeacherWrappers/{task}-v0")
    for obs in random_walk(env, 120, seed=1):
        base = env.unwrapped
        image = obs["image"]
        truth = base.grid.encode()
        seen = image[..., 0] > 0
        ax, ay = base.agent_pos
        seen[ax, ay] = False  # shows the carried object instead
        assert np.array_equal(image[..., :3][seen], truth[seen])
        agent_cells = np.argwhere(image[..., 3] > 0)
        assert agent_cells.tolist() == [[ax, ay]] and image[ax, ay, 3] == base.agent_dir + 1
        carried = base.carrying.encode() if base.carrying else (OBJECT_TO_IDX["empty"], 0, 0)
        assert tuple(image[ax, ay, :3]) == tuple(carried)


def test_only_cells_in_view_are_revealed():
    env = gym.make("TeacherWrappers/SimpleDoorKey-v0")
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    # A 3x3 view sees at most 9 cells, and only cells MiniGrid says the agent could see.
    seen = np.argwhere(obs["image"][..., 0] > 0)
    assert 1 <= len(seen) <= 9
    for x, y in seen:
        assert base.in_view(x, y)


def test_memory_persists_after_cells_leave_the_view():
    env = gym.make("TeacherWrappers/SimpleDoorKey-v0")
    obs, _ = env.reset(seed=0)
    first_seen = obs["image"][..., 0] > 0
    for _ in range(4):  # turn on the spot: new cells appear, old ones are kept
        obs, *_ = env.step(0)
    assert (obs["image"][..., 0] > 0)[first_seen].all()
    assert (obs["image"][..., 0] > 0).sum() > first_seen.sum()


def test_map_resets_between_episodes():
    env = gym.make("TeacherWrappers/SimpleDoorKey-v0")
    env.reset(seed=0)
    for _ in range(10):
        obs, *_ = env.step(0)
    before = (obs["image"][..., 0] > 0).sum()
    obs, _ = env.reset(seed=5)
    assert (obs["image"][..., 0] > 0).sum() < before


def test_carried_object_is_shown_and_the_floor_is_remembered():
    env = gym.make("TeacherWrappers/SimpleDoorKey-v0")
    env.reset(seed=0)
    base = env.unwrapped
    base.carrying = Key("red")
    obs, *_ = env.step(6)
    ax, ay = base.agent_pos
    assert tuple(obs["image"][ax, ay, :3]) == tuple(Key("red").encode())
    assert tuple(env.get_wrapper_attr("memory_map").cells[ax, ay]) == (OBJECT_TO_IDX["empty"], 0, 0)


def test_same_map_from_the_observation_as_from_minigrid_view():
    raw = gym.make("MiniGrid-DoorKey-8x8-v0")
    memory = MemoryMap(8, 8)
    obs, _ = raw.reset(seed=0)
    memory.update(raw.unwrapped, obs["image"])
    other = MemoryMap(8, 8)
    other.update(raw.unwrapped, partial_view(raw.unwrapped))
    assert np.array_equal(memory.observation(), other.observation())


def test_memory_map_env_passes_the_gymnasium_checker():
    check_env(MemoryMapObservation(SimpleDoorKeyEnv()), skip_render_check=True)
    spec = gym.make("TeacherWrappers/SimpleDoorKey-v0").spec
    assert gym.make(spec).observation_space["image"].shape == (10, 10, 4)


def test_memory_wrapper_rejects_non_minigrid_envs():
    with pytest.raises(TypeError, match="MiniGrid"):
        MemoryMapObservation(gym.make("CartPole-v1"))
