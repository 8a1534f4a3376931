"""Episodic revisit counts: what a student needs to notice that it is going round in circles.

A memory map cannot tell a policy that it has already tried something: turning on the spot or walking
back and forth shows it the same few maps again and again, so a greedy (argmax) policy that errs once
errs forever. The teacher breaks its own loops by counting how often it has seen the same map in the
episode (teacher_wrappers.teacher.LOOP_LIMIT); this wrapper gives the student the same count, so that
it can learn the escape instead of only the loop.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

MAX_COUNT = 255  # stored as uint8


class RevisitCount(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Adds obs["revisits"], shape (1,) uint8: how many times this episode the agent has seen this exact
    obs["image"] (1 on a first visit; saturates at 255)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or "image" not in space.spaces:
            raise TypeError(f"RevisitCount needs a Dict observation with an 'image', got {space}")
        count = gym.spaces.Box(1, MAX_COUNT, (1,), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict({**space.spaces, "revisits": count})
        self.counts: dict[bytes, int] = {}

    def reset(self, **kwargs):
        self.counts = {}
        return super().reset(**kwargs)

    def observation(self, observation):
        key = observation["image"].tobytes()
        self.counts[key] = min(self.counts.get(key, 0) + 1, MAX_COUNT)
        return {**observation, "revisits": np.array([self.counts[key]], dtype=np.uint8)}
