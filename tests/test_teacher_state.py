"""The teacher's state: saved after N steps and loaded into fresh wrappers, it continues as an uninterrupted run."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from helpers import place_agent, put, room_map

from teacher_wrappers import Teacher, TeacherWrapper, make_teacher_vector_env

SAME_STEP = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
TIMING = ("planner_seconds", "seconds_per_query")  # wall-clock time: never equal between two runs


def counters(stats: dict) -> dict:
    return {key: value for key, value in stats.items() if key not in TIMING}


def test_a_loaded_teacher_keeps_its_answers_and_its_unknown_texts(gappy_table):
    memory = room_map()
    put(memory, (6, 4), "door", "red", "locked")
    place_agent(memory, (3, 3), 0, carrying=("key", "red"))
    teacher = Teacher("recorded", task="SimpleDoorKey", path=gappy_table)
    [(_, info)] = teacher.act([memory])
    assert not info["cache_hit"] and teacher.stats.unknown_texts == 1
    state = pickle.loads(pickle.dumps(teacher.state_dict()))  # plain data
    fresh = Teacher("recorded", task="SimpleDoorKey", path=gappy_table)
    fresh.load_state_dict(state)
    place_agent(memory, (3, 3), 1, carrying=("key", "red"))  # the same text: answered from the memo
    [(probs, info)] = fresh.act([memory])
    [(expected, _)] = teacher.act([memory])
    assert not info["cache_hit"]  # a text the planner did not know stays unknown after a resume
    assert fresh.summary() == teacher.summary() and fresh.planner.queries == teacher.planner.queries == 1
    np.testing.assert_array_equal(probs, expected)
    with pytest.raises(ValueError, match="text style 'plain'"):
        Teacher("rules", text_style="colored").load_state_dict(state)
    with pytest.raises(ValueError, match="not a teacher state"):
        fresh.load_state_dict({"stats": {}})


def choose(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mostly the teacher's suggestion, sometimes a random action: episodes end, and states recur."""
    actions = [rng.choice(len(p), p=p / p.sum()) for p in probs.astype(np.float64)]
    return np.where(rng.random(len(actions)) < 0.3, rng.integers(0, 7, len(actions)), actions)


def play(envs, obs, rng, steps):
    actions, seen = [], []
    for _ in range(steps):
        actions.append(choose(obs["teacher_probs"], rng))
        obs, *_ = envs.step(actions[-1])
        seen.append(obs["teacher_probs"])
    return obs, actions, seen


def resumed_from(env, seed: int, actions: list, state: dict):
    """`env` brought to where `actions` left an env reset with `seed` (the teacher off), then given `state`."""
    env.teacher_enabled = False
    env.reset(seed=seed)
    for action in actions:
        env.step(action)
    env.teacher_enabled = True
    env.load_teacher_state_dict(state)
    return env


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_vector_env_resumed_from_its_teacher_state_counts_as_an_uninterrupted_one(gappy_table, asynchronous):
    def make(workers=2):
        fns = [lambda: gym.make("TeacherWrappers/SimpleDoorKey-v0")] * 3
        return make_teacher_vector_env(fns, planner="recorded", planner_kwargs={"path": gappy_table},
                                       asynchronous=asynchronous, workers=workers, **SAME_STEP)

    n, m = 60, 60
    envs = make()
    try:  # uninterrupted
        obs, _ = envs.reset(seed=0)
        _, _, expected = play(envs, obs, np.random.default_rng(1), n + m)
        uninterrupted = envs.teacher_stats()
    finally:
        envs.close()
    assert uninterrupted["unknown_texts"] > 0 and uninterrupted["loop_breaks"] > 0
    envs = make()
    try:  # stopped after n steps
        rng = np.random.default_rng(1)
        obs, _ = envs.reset(seed=0)
        obs, actions, _ = play(envs, obs, rng, n)
        state = pickle.loads(pickle.dumps(envs.teacher_state_dict()))
        last_probs = obs["teacher_probs"]
    finally:
        envs.close()
    envs = make()
    try:  # resumed: the sub-envs brought to the same state, then the teacher's state loaded
        resumed_from(envs, 0, actions, state)
        assert envs.teacher_state_dict() == state
        _, _, got = play(envs, {"teacher_probs": last_probs}, rng, m)
        resumed = envs.teacher_stats()
    finally:
        envs.close()
    np.testing.assert_array_equal(np.stack(got), np.stack(expected[n:]))
    assert counters(resumed) == counters(uninterrupted)
    if asynchronous:  # a state saved with 2 workers loads into 1: the counters go on from their sum
        envs = make(workers=1)
        try:
            envs.load_teacher_state_dict(state)
            reloaded = envs.teacher_stats()
        finally:
            envs.close()
        saved = sum(s["stats"]["steps"] for s in state["workers"])
        assert reloaded["steps"] == saved and reloaded["teachers"] == 1


def test_a_single_env_wrapper_resumed_from_its_teacher_state_continues_exactly(gappy_table):
    def make():
        return TeacherWrapper(gym.make("MiniGrid-DoorKey-8x8-v0"), planner="recorded",
                              planner_kwargs={"fallback": "rules"})  # a plain MiniGrid env: the wrapper's own map

    def run(env, rng, steps, obs):
        actions, seen = [], []
        for _ in range(steps):
            actions.append(int(choose(obs["teacher_probs"][None], rng)[0]))
            obs, _, terminated, truncated, _ = env.step(actions[-1])
            seen.append(obs["teacher_probs"])
            if terminated or truncated:
                break
        return obs, actions, seen

    n = 7
    whole = make()
    obs, _ = whole.reset(seed=4)
    _, _, expected = run(whole, np.random.default_rng(2), 2 * n, obs)
    assert len(expected) == 2 * n  # the episode lasts past the resume
    env = make()
    rng = np.random.default_rng(2)
    obs, _ = env.reset(seed=4)
    obs, actions, _ = run(env, rng, n, obs)
    state = pickle.loads(pickle.dumps(env.teacher_state_dict()))
    resumed = resumed_from(make(), 4, actions, state)
    _, _, got = run(resumed, rng, n, obs)
    np.testing.assert_array_equal(np.stack(got), np.stack(expected[n:]))
    assert counters(resumed.teacher_stats()) == counters(whole.teacher_stats())
