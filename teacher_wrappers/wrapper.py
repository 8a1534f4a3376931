"""TeacherWrapper: the teacher's suggestions in the observation and in `info`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.minigrid_env import MiniGridEnv

from teacher_wrappers.memory import MemoryMap, partial_view
from teacher_wrappers.planners import Planner
from teacher_wrappers.teacher import Teacher


def _teacher_for(env_unwrapped, planner: Planner | str, planner_kwargs: dict | None) -> Teacher:
    style = getattr(env_unwrapped, "text_style", "plain")
    if isinstance(planner, str):
        kwargs = {"task": getattr(env_unwrapped, "recorded_table", "SimpleDoorKey"), **(planner_kwargs or {})}
        return Teacher(planner, text_style=style, **kwargs)
    return Teacher(planner, text_style=style)


def _with_teacher_space(space: gym.Space, n_actions: int) -> gym.spaces.Dict:
    if not isinstance(space, gym.spaces.Dict):
        raise TypeError(f"TeacherWrapper needs a Dict observation space to add 'teacher_probs' to, got {space}")
    probs = gym.spaces.Box(0.0, 1.0, (n_actions,), dtype=np.float32)
    return gym.spaces.Dict({**space.spaces, "teacher_probs": probs})


class TeacherWrapper(gym.Wrapper):
    """Adds obs["teacher_probs"] (float32, sums to 1) and info["teacher"] to a MiniGrid environment.

    `planner` is a planner name ("recorded", "rules", ...) built with `planner_kwargs`, or a Planner.
    On the registered tasks the teacher reads the memory map the student sees; on plain MiniGrid
    environments it keeps its own memory map of the agent's views.
    """

    def __init__(self, env: gym.Env, planner: Planner | str = "recorded", planner_kwargs: dict | None = None):
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, MiniGridEnv):
            raise TypeError(f"TeacherWrapper needs a MiniGrid environment, got {type(base).__name__}")
        self.teacher = _teacher_for(base, planner, planner_kwargs)
        self.observation_space = _with_teacher_space(env.observation_space, int(env.action_space.n))
        try:
            self._memory: MemoryMap = env.get_wrapper_attr("memory_map")
            self._own_memory = False
        except AttributeError:
            self._memory, self._own_memory = MemoryMap(base.width, base.height), True

    def _suggest(self, obs: dict, info: dict) -> tuple[dict, dict]:
        if self._own_memory:
            self._memory.update(self.env.unwrapped, partial_view(self.env.unwrapped))
        memory_map = self._memory.observation()
        key = memory_map.tobytes()
        self._visits[key] = self._visits.get(key, 0) + 1
        [(probs, teacher_info)] = self.teacher.act([memory_map], visits=[self._visits[key]])
        return {**obs, "teacher_probs": probs}, {**info, "teacher": teacher_info}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._visits: dict[bytes, int] = {}
        if self._own_memory:
            self._memory.reset()
        return self._suggest(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._suggest(obs, info)
        return obs, reward, terminated, truncated, info

    def teacher_stats(self) -> dict:
        return self.teacher.summary()
