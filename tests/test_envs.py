import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.world_object import Key

import teacher_wrappers
from teacher_wrappers.envs import (
    ColoredDoorKeyEnv,
    LavaDoorKeyEnv,
    SimpleDoorKeyEnv,
    TwoDoorEnv,
)


def objects(env, kind):
    return [(x, y, env.grid.get(x, y)) for x in range(env.width) for y in range(env.height)
            if env.grid.get(x, y) is not None and env.grid.get(x, y).type == kind]


@pytest.mark.parametrize("task", teacher_wrappers.TASKS)
def test_registered_and_seeded_resets_are_reproducible(task):
    env = gym.make(f"TeacherWrappers/{task}-v0")
    first, _ = env.reset(seed=7)
    grid_a = env.unwrapped.grid.encode().copy()
    env.reset(seed=8)
    second, _ = env.reset(seed=7)
    assert np.array_equal(first["image"], second["image"])
    assert np.array_equal(grid_a, env.unwrapped.grid.encode())


def test_unknown_env_id_is_a_clear_error():
    with pytest.raises(gym.error.Error, match="SimpleDoorKy"):
        gym.make("TeacherWrappers/SimpleDoorKy-v0")


@pytest.mark.parametrize("cls", [SimpleDoorKeyEnv, LavaDoorKeyEnv, ColoredDoorKeyEnv])
def test_room_door_and_key_layout(cls):
    for seed in range(40):
        env = cls()
        env.reset(seed=seed)
        assert (env.width, env.height, env.agent_view_size, env.max_steps) == (10, 10, 3, 150)
        room_w, room_h = env.room
        assert 5 <= room_w <= 10 and 5 <= room_h <= 10
        [(dx, dy, door)] = objects(env, "door")
        assert door.is_locked
        on_wall = dx in (0, room_w - 1) or dy in (0, room_h - 1)
        corner = dx in (0, room_w - 1) and dy in (0, room_h - 1)
        assert on_wall and not corner
        keys = objects(env, "key")
        assert all(0 < x < room_w - 1 and 0 < y < room_h - 1 for x, y, _ in keys)
        assert any(key.color == door.color for _, _, key in keys)
        ax, ay = env.agent_pos
        assert 0 < ax < room_w - 1 and 0 < ay < room_h - 1


def _front_of_door(env):
    [(dx, dy, _)] = objects(env, "door")
    room_w, room_h = env.room
    if dx == 0:
        return (1, dy)
    if dx == room_w - 1:
        return (dx - 1, dy)
    return (dx, 1) if dy == 0 else (dx, dy - 1)


def test_lava_never_in_front_of_the_door():
    for seed in range(200):
        env = LavaDoorKeyEnv()
        env.reset(seed=seed)
        [(lx, ly, _)] = objects(env, "lava")
        assert (lx, ly) != _front_of_door(env)


def test_colored_door_is_blue_with_a_red_distractor():
    for seed in range(40):
        env = ColoredDoorKeyEnv()
        env.reset(seed=seed)
        [(_, _, door)] = objects(env, "door")
        assert door.color == "blue"
        assert sorted(key.color for _, _, key in objects(env, "key")) == ["blue", "red"]
        assert all((x, y) != _front_of_door(env) for x, y, _ in objects(env, "key"))


def test_two_door_has_two_locked_doors_on_opposite_walls_and_a_central_key():
    for seed in range(20):
        env = TwoDoorEnv()
        env.reset(seed=seed)
        doors = objects(env, "door")
        assert len(doors) == 2 and all(d.is_locked for _, _, d in doors)
        (x1, y1, _), (x2, y2, _) = doors
        assert {x1, x2} == {0, 19} or {y1, y2} == {0, 19}
        [(kx, ky, _)] = objects(env, "key")
        assert 9 <= kx <= 10 and 9 <= ky <= 10


def _face(env, pos, heading):
    env.agent_pos, env.agent_dir = pos, heading


def test_opening_the_door_with_its_key_succeeds_with_the_time_discounted_reward():
    env = SimpleDoorKeyEnv()
    env.reset(seed=3)
    [(dx, dy, door)] = objects(env, "door")
    front = _front_of_door(env)
    heading = [(1, 0), (0, 1), (-1, 0), (0, -1)].index((dx - front[0], dy - front[1]))
    env.grid.set(*front, None)
    _face(env, front, heading)
    _, reward, terminated, _, info = env.step(env.actions.toggle)
    assert not terminated and reward == 0 and not info["success"]  # locked: no key yet
    env.carrying = Key(door.color)
    _, reward, terminated, _, info = env.step(env.actions.toggle)
    assert terminated and info["success"] and door.is_open
    assert reward == pytest.approx(1 - 0.9 * 2 / 150)


def test_stepping_into_lava_ends_the_episode_without_reward():
    env = LavaDoorKeyEnv()
    env.reset(seed=1)
    [(lx, ly, _)] = objects(env, "lava")
    env.grid.set(lx - 1, ly, None)
    _face(env, (lx - 1, ly), 0)
    _, reward, terminated, _, info = env.step(env.actions.forward)
    assert terminated and reward == 0 and not info["success"]


def test_episode_truncates_at_max_steps():
    env = gym.make("TeacherWrappers/SimpleDoorKey-v0")
    env.reset(seed=0)
    for step in range(150):
        _, _, terminated, truncated, _ = env.step(6)  # "done" does nothing in these tasks
        assert not terminated
    assert truncated and step == 149
