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
from teacher_wrappers.memory import MemoryMap, partial_view
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
    for seed in range(12):
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
            assert np.array_equal(partial_view(base), obs["image"])  # what a teacher keeping its own map sees
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


def reference_step(env, action):
    """DoorTaskEnv's step as it was: MiniGrid's own, then the success of opening a door."""
    obs, reward, terminated, truncated, info = MiniGridEnv.step(env, action)
    opened = action == env.actions.toggle and any(door.is_open for door in env.doors)
    if opened:
        reward, terminated = env._reward(), True
    info["success"] = bool(opened)
    return obs, reward, terminated, truncated, info


def state_of(env, around: tuple[int, int]):
    """The agent, what it carries, and the 3x3 cells around `around` (a step changes at most the cell in front)."""
    carried = env.carrying
    x, y = int(around[0]), int(around[1])
    cells = [env.grid.get(x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    return (env.agent_pos, [type(v) for v in env.agent_pos], env.agent_dir, env.step_count,
            [None if cell is None else cell.encode() for cell in cells],
            None if carried is None else (carried.encode(), np.asarray(carried.cur_pos).tolist(),
                                          np.asarray(carried.cur_pos).dtype))


def perturb(env, rng) -> None:
    """Somewhere else in the room, often facing a door; doors locked, closed or open; the door's key in hand
    or not."""
    for door in env.doors:
        door.is_open = bool(rng.random() < 0.2)
        door.is_locked = not door.is_open and bool(rng.random() < 0.7)
    env.carrying = Key(env.doors[0].color) if rng.random() < 0.5 else None
    room_w, room_h = env.room
    facing_doors = [((x - dx, y - dy), heading) for x in range(room_w) for y in range(room_h)
                    if isinstance(env.grid.get(x, y), Door)
                    for heading, (dx, dy) in enumerate(((1, 0), (0, 1), (-1, 0), (0, -1)))
                    if 0 < x - dx < room_w - 1 and 0 < y - dy < room_h - 1]
    while True:
        if rng.random() < 0.5:
            (x, y), heading = facing_doors[int(rng.integers(len(facing_doors)))]
        else:
            x, y, heading = int(rng.integers(1, room_w - 1)), int(rng.integers(1, room_h - 1)), int(rng.integers(4))
        cell = env.grid.get(x, y)
        if cell is None or cell.can_overlap():
            break
    env.agent_pos, env.agent_dir = (x, y), heading


@pytest.mark.parametrize("task", teacher_wrappers.TASKS)
def test_task_step_is_minigrids(task):
    fast, slow = (gym.make(f"TeacherWrappers/{task}-v0", disable_env_checker=True).unwrapped for _ in range(2))
    rng = np.random.default_rng(2)
    seed, counts = 0, {"moved": 0, "picked up": 0, "dropped": 0, "toggled": 0, "success": 0}
    fast.reset(seed=seed)
    slow.reset(seed=seed)
    for step in range(600):
        if step % 25 == 0:
            assert np.array_equal(fast.grid.encode(), slow.grid.encode())
            state = int(rng.integers(1 << 30))
            perturb(fast, np.random.default_rng(state))
            perturb(slow, np.random.default_rng(state))
        action = (int(rng.integers(7)), np.int64(rng.integers(7)))[step % 2]
        where = fast.agent_pos
        before = state_of(fast, where)
        outcomes = []
        for env, step_fn in ((fast, type(fast).step), (slow, reference_step)):
            try:
                outcomes.append(step_fn(env, action))
            except AssertionError:  # facing out of the grid, out of the room through an open door
                outcomes.append(None)
        got, expected = outcomes
        if got is None or expected is None:
            assert got is expected
            continue
        assert np.array_equal(got[0]["image"], expected[0]["image"]) and got[1:] == expected[1:]
        assert type(got[4]["success"]) is bool
        after = state_of(fast, where)
        assert after == state_of(slow, where)
        counts["moved"] += before[0] != after[0]
        counts["picked up"] += before[5] is None and after[5] is not None
        counts["dropped"] += before[5] is not None and after[5] is None
        counts["toggled"] += before[4] != after[4] and int(action) == 5
        counts["success"] += got[4]["success"]
        if got[2] or got[3]:
            seed += 1
            fast.reset(seed=seed)
            slow.reset(seed=seed)
    assert all(counts.values()), counts
