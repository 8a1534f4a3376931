"""TeacherVectorWrapper: one teacher for all sub-envs of a vector env, one batched planner call per step;
and `make_teacher_vector_env`, which picks it or the worker-process variant."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from teacher_wrappers.grouped import GroupedAsyncVectorEnv, make_vector_env
from teacher_wrappers.mission import decode
from teacher_wrappers.planners import Planner
from teacher_wrappers.styles import TextStyle
from teacher_wrappers.teacher import Teacher
from teacher_wrappers.wrappers.base import check_visits, make_teacher, task_of, with_teacher_space
from teacher_wrappers.wrappers.workers import TeacherWorkersVectorEnv


class TeacherVectorWrapper(gym.vector.VectorWrapper):
    """The vector version: one batched planner call per step for all sub-envs whose text is new.

    The sub-envs must observe their memory map as obs["image"], as the registered tasks do (wrap a
    plain MiniGrid env in `MemoryMapObservation` first). Works with Sync and Async vector envs.
    `planner`, `planner_kwargs` and `text_style` as TeacherWrapper's (`planner` may be a Teacher);
    `task` names the recorded table (default: the sub-envs' task's).
    """

    def __init__(self, env: gym.vector.VectorEnv, planner: Planner | Teacher | str = "recorded",
                 planner_kwargs: dict | None = None, text_style: TextStyle | str | None = None, task: str | None = None):
        super().__init__(env)
        single = env.single_observation_space
        if not isinstance(single, gym.spaces.Dict) or "image" not in single.spaces:
            raise TypeError("TeacherVectorWrapper needs sub-envs observing {'image': memory map}; "
                            "wrap plain MiniGrid envs in teacher_wrappers.MemoryMapObservation")
        if isinstance(planner, Teacher):
            self.teacher = planner
        else:
            task_style, table = task_of(env)
            self.teacher = make_teacher(planner, text_style, planner_kwargs, (task_style, task or table))
        if self.teacher.style.uses_mission and "mission" not in single.spaces:
            raise TypeError(f"the {self.teacher.style.name!r} text style needs the mission: sub-envs must observe "
                            "obs['mission'] (wrap plain MiniGrid envs in teacher_wrappers.MemoryMapObservation)")
        n_actions = int(env.single_action_space.n)
        self.single_observation_space = with_teacher_space(single, n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self._same_step = env.metadata.get("autoreset_mode") == gym.vector.AutoresetMode.SAME_STEP
        self._visits: list[dict[bytes, int]] = [{} for _ in range(self.num_envs)]
        self.last_infos: list[dict] = []  # info["teacher"] of every sub-env at the last step
        self.teacher_enabled = True  # when False, teacher_probs are all zero and the teacher is not asked

    def _suggest(self, obs: dict) -> dict:
        if not self.teacher_enabled:
            self.last_infos = []
            return {**obs, "teacher_probs": np.zeros((self.num_envs,) + self.single_observation_space[
                "teacher_probs"].shape, dtype=np.float32)}
        maps = list(obs["image"])
        keys = [memory_map.tobytes() for memory_map in maps]
        counts = []
        for visits, key in zip(self._visits, keys):
            visits[key] = visits.get(key, 0) + 1
            counts.append(visits[key])
        missions = [decode(vector) for vector in obs["mission"]] if "mission" in obs else None
        results = self.teacher.act(maps, visits=counts, keys=keys, missions=missions)
        self.last_infos = [info for _, info in results]
        return {**obs, "teacher_probs": np.stack([probs for probs, _ in results])}

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._visits = [{} for _ in range(self.num_envs)]
        return self._suggest(obs), info

    def step(self, actions):
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        done = np.logical_or(terminations, truncations)
        if self._same_step:  # the returned obs already starts the next episode
            for i in np.flatnonzero(done):
                self._visits[i] = {}
        obs = self._suggest(obs)
        if not self._same_step:  # the next step's obs starts the next episode
            for i in np.flatnonzero(done):
                self._visits[i] = {}
        return obs, rewards, terminations, truncations, infos

    def teacher_stats(self) -> dict:
        return self.teacher.summary()

    def teacher_state_dict(self) -> dict:
        """The teacher's state (`Teacher.state_dict`) and each sub-env's visit counts of its episode (they
        shape the suggestions): save them to resume."""
        return {"teacher": self.teacher.state_dict(), "visits": [dict(visits) for visits in self._visits]}

    def load_teacher_state_dict(self, state: dict) -> None:
        """Continue from `teacher_state_dict()`, on sub-envs in the state they were in then."""
        check_visits(state["visits"], self.num_envs)
        self.teacher.load_state_dict(state["teacher"])
        self._visits = [dict(visits) for visits in state["visits"]]


def make_teacher_vector_env(env_fns: Sequence[Callable[[], gym.Env]], planner: Planner | str = "recorded",
                            planner_kwargs: dict | None = None, asynchronous: bool = False,
                            workers: int | None = None, text_style: TextStyle | str | None = None, **vector_kwargs
                            ) -> TeacherVectorWrapper | TeacherWorkersVectorEnv:
    """A vector env of `env_fns` whose observations carry obs["teacher_probs"].

    Asynchronous with a planner that costs no LLM call (`planner.live` is False: recorded, rules):
    each worker process runs a TeacherVectorWrapper over its sub-envs, so the teacher scales with the
    cores (TeacherWorkersVectorEnv).
    Otherwise one teacher in this process answers all sub-envs with one batched planner call per
    step (TeacherVectorWrapper), so an LLM sees batches and its answers are asked for once.
    Asynchronous sub-envs are spread over `workers` processes (default: one per usable core; see
    teacher_wrappers.grouped.make_vector_env). `text_style` as TeacherWrapper's (default: the task's).
    `vector_kwargs` go to the vector env (e.g. autoreset_mode).
    """
    if not asynchronous:
        return TeacherVectorWrapper(gym.vector.SyncVectorEnv(list(env_fns), **vector_kwargs), planner=planner,
                                    planner_kwargs=planner_kwargs, text_style=text_style)
    probe = env_fns[0]()  # the task's text style and recorded table, for the teacher here
    try:
        task = task_of(probe)
    finally:
        probe.close()
    teacher = make_teacher(planner, text_style, planner_kwargs, task)
    if teacher.planner.live:  # an LLM: one batched query per step, here
        return TeacherVectorWrapper(make_vector_env(env_fns, True, workers, **vector_kwargs), planner=teacher)
    wrap = functools.partial(TeacherVectorWrapper, planner=planner, planner_kwargs=planner_kwargs,
                             text_style=text_style)
    return TeacherWorkersVectorEnv(GroupedAsyncVectorEnv(env_fns, workers=workers, wrap_group=wrap, **vector_kwargs),
                                   teacher)
