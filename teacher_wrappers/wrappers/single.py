"""TeacherWrapper: the teacher's suggestions in one environment's observation and `info`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.minigrid_env import MiniGridEnv

from teacher_wrappers.memory import MemoryMap, partial_view
from teacher_wrappers.mission import Mission, start_mission
from teacher_wrappers.planners import Planner
from teacher_wrappers.styles import TextStyle
from teacher_wrappers.teacher import Teacher
from teacher_wrappers.wrappers.base import make_teacher, task_of, with_teacher_space


class TeacherWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds obs["teacher_probs"] (float32, sums to 1) and info["teacher"] to a MiniGrid environment.

    `planner` is a planner name ("recorded", "rules", ...) built with `planner_kwargs`, or a Planner,
    or a Teacher to share with other wrappers (its memos serve them all; the visit counts stay per
    wrapper).
    On the registered tasks the teacher reads the memory map the student sees; on plain MiniGrid
    environments it keeps its own memory map of the agent's views. `text_style` defaults to the
    task's own ("plain", ...); on plain MiniGrid and BabyAI envs to "suite" (every object and the
    mission, see `teacher_wrappers.styles`), except with the recorded planner, whose table is in "plain";
    or a TextStyle object of your own.
    The constructor arguments are recorded, so `env.spec.make()`, `gym.make(env.spec)` and
    `check_env` rebuild the same teacher.
    """

    def __init__(self, env: gym.Env, planner: Planner | Teacher | str = "recorded", planner_kwargs: dict | None = None,
                 text_style: TextStyle | str | None = None):
        # No deep copy: a Planner object (a loaded model, a server connection) is shared, not cloned.
        gym.utils.RecordConstructorArgs.__init__(self, planner=planner, planner_kwargs=planner_kwargs,
                                                 text_style=text_style, _disable_deepcopy=True)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, MiniGridEnv):
            raise TypeError(f"TeacherWrapper needs a MiniGrid environment, got {type(base).__name__}")
        self.teacher = planner if isinstance(planner, Teacher) else make_teacher(planner, text_style, planner_kwargs,
                                                                              task_of(env))
        self._mission = Mission(())
        self.observation_space = with_teacher_space(env.observation_space, int(env.action_space.n))
        try:
            self._memory: MemoryMap = env.get_wrapper_attr("memory_map")
            self._own_memory = False
        except AttributeError:
            self._memory, self._own_memory = MemoryMap(base.width, base.height), True
        self._map_shape = self._memory.cells.shape[:2] + (4,)
        self._visits: dict[bytes, int] = {}
        self.teacher_enabled = True  # when False, teacher_probs are all zero and the teacher is not asked

    def _suggest(self, obs: dict, info: dict) -> tuple[dict, dict]:
        if not self.teacher_enabled:
            return {**obs, "teacher_probs": np.zeros(self.observation_space["teacher_probs"].shape, np.float32)}, info
        memory = self._memory  # the map's source: it knows where the agent is without a search
        if self._own_memory:
            memory.update(self.env.unwrapped, partial_view(self.env.unwrapped))
        memory_map = obs.get("image")
        if self._own_memory or memory_map is None or memory_map.shape != self._map_shape:
            memory_map = memory.observation()  # else the observation is the map, just updated
        key = memory_map.tobytes()
        count = self._visits[key] = self._visits.get(key, 0) + 1
        state = (memory.agent_pos, memory.agent_dir)
        probs, info["teacher"] = self.teacher.act_one(memory_map, count, key, state, self._mission)
        return {**obs, "teacher_probs": probs}, info  # the env's info dict is fresh every step

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._visits: dict[bytes, int] = {}
        self._mission = start_mission(self.env.unwrapped)
        if self._own_memory:
            self._memory.reset()
        return self._suggest(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._suggest(obs, info)
        return obs, reward, terminated, truncated, info

    def teacher_stats(self) -> dict:
        return self.teacher.summary()

    def teacher_state_dict(self) -> dict:
        """The teacher's state (`Teacher.state_dict`) and this episode's visit counts and mission (they shape
        the suggestions), plus the memory map where the wrapper keeps its own: save them to resume."""
        state = {"teacher": self.teacher.state_dict(), "visits": dict(self._visits), "mission": self._mission}
        if self._own_memory:
            memory = self._memory
            state["memory"] = (memory.cells.copy(), memory.agent_pos, memory.agent_dir, memory.carrying.copy())
        return state

    def load_teacher_state_dict(self, state: dict) -> None:
        """Continue from `teacher_state_dict()`, on an env in the state it was in then."""
        self.teacher.load_state_dict(state["teacher"])
        self._visits, self._mission = dict(state["visits"]), state["mission"]
        if self._own_memory and "memory" in state:
            cells, self._memory.agent_pos, self._memory.agent_dir, carrying = state["memory"]
            self._memory.cells[:], self._memory.carrying = cells, carrying.copy()
