"""TeacherWrapper: the teacher's suggestions in the observation and in `info`."""

from __future__ import annotations

import functools
from dataclasses import asdict
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.minigrid_env import MiniGridEnv

from teacher_wrappers.describe_suite import SUITE_STYLE
from teacher_wrappers.memory import MemoryMap, partial_view
from teacher_wrappers.mission import Mission, decode, start_mission
from teacher_wrappers.planners import Planner
from teacher_wrappers.suite_teacher import SuiteTeacher
from teacher_wrappers.skills import LEFT
from teacher_wrappers.teacher import Teacher, TeacherStats
from teacher_wrappers.vector import GroupedAsyncVectorEnv, make_vector_env


def default_text_style(task_style: str | None, planner: Planner | str) -> str:
    """The paper tasks keep their style; other MiniGrid envs get the suite's, except for the recorded
    planner, whose table holds texts of the reference style only."""
    if task_style is not None:
        return task_style
    name = planner if isinstance(planner, str) else getattr(planner, "name", "")
    return "plain" if name == "recorded" else SUITE_STYLE


def make_teacher(planner: Planner | str, text_style: str, task: str, planner_kwargs: dict | None,
                 paper_task: bool = False) -> Teacher:
    """The teacher for a text style; outside the paper's tasks it never idles on `done`."""
    cls = SuiteTeacher if text_style == SUITE_STYLE else Teacher
    style_kwargs = {} if cls is SuiteTeacher else {"text_style": text_style}
    if isinstance(planner, str):
        teacher = cls(planner, **style_kwargs, **{"task": task, **(planner_kwargs or {})})
    else:
        teacher = cls(planner, **style_kwargs)
    if not paper_task:
        teacher.idle_action = LEFT
    return teacher


def _teacher_for(env_unwrapped, planner: Planner | str, planner_kwargs: dict | None,
                 text_style: str | None = None) -> Teacher:
    task_style = getattr(env_unwrapped, "text_style", None)
    style = text_style or default_text_style(task_style, planner)
    return make_teacher(planner, style, getattr(env_unwrapped, "recorded_table", "SimpleDoorKey"), planner_kwargs,
                        paper_task=task_style is not None)


def _with_teacher_space(space: gym.Space, n_actions: int) -> gym.spaces.Dict:
    if not isinstance(space, gym.spaces.Dict):
        raise TypeError(f"TeacherWrapper needs a Dict observation space to add 'teacher_probs' to, got {space}")
    probs = gym.spaces.Box(0.0, 1.0, (n_actions,), dtype=np.float32)
    return gym.spaces.Dict({**space.spaces, "teacher_probs": probs})


class TeacherWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds obs["teacher_probs"] (float32, sums to 1) and info["teacher"] to a MiniGrid environment.

    `planner` is a planner name ("recorded", "rules", ...) built with `planner_kwargs`, or a Planner,
    or a Teacher to share with other wrappers (its memos serve them all; the visit counts stay per
    wrapper).
    On the registered tasks the teacher reads the memory map the student sees; on plain MiniGrid
    environments it keeps its own memory map of the agent's views. `text_style` defaults to the
    task's own ("plain", ...); on plain MiniGrid and BabyAI envs to "suite" (every object and the
    mission, see `describe_suite`), except with the recorded planner, whose table is in "plain".
    The constructor arguments are recorded, so `env.spec.make()`, `gym.make(env.spec)` and
    `check_env` rebuild the same teacher.
    """

    def __init__(self, env: gym.Env, planner: Planner | Teacher | str = "recorded", planner_kwargs: dict | None = None,
                 text_style: str | None = None):
        # No deep copy: a Planner object (a loaded model, a server connection) is shared, not cloned.
        gym.utils.RecordConstructorArgs.__init__(self, planner=planner, planner_kwargs=planner_kwargs,
                                                 text_style=text_style, _disable_deepcopy=True)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, MiniGridEnv):
            raise TypeError(f"TeacherWrapper needs a MiniGrid environment, got {type(base).__name__}")
        self.teacher = planner if isinstance(planner, Teacher) else _teacher_for(base, planner, planner_kwargs,
                                                                                 text_style)
        self._mission = Mission(())
        self.observation_space = _with_teacher_space(env.observation_space, int(env.action_space.n))
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
        if isinstance(self.teacher, SuiteTeacher):
            probs, info["teacher"] = self.teacher.act_one(memory_map, count, key, state, self._mission)
        else:
            probs, info["teacher"] = self.teacher.act_one(memory_map, count, key, state)
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

    def visits_state(self) -> dict[bytes, int]:
        """This episode's visit counts (older name; `teacher_state_dict()` holds them with the teacher's state)."""
        return dict(self._visits)

    def restore_visits(self, visits: dict[bytes, int]) -> None:
        self._visits = dict(visits)


class TeacherVectorWrapper(gym.vector.VectorWrapper):
    """The vector version: one batched planner call per step for all sub-envs whose text is new.

    The sub-envs must observe their memory map as obs["image"], as the registered tasks do (wrap a
    plain MiniGrid env in `MemoryMapObservation` first). Works with Sync and Async vector envs.
    """

    def __init__(self, env: gym.vector.VectorEnv, planner: Planner | str = "recorded",
                 planner_kwargs: dict | None = None, text_style: str | None = None, task: str | None = None):
        super().__init__(env)
        single = env.single_observation_space
        if not isinstance(single, gym.spaces.Dict) or "image" not in single.spaces:
            raise TypeError("TeacherVectorWrapper needs sub-envs observing {'image': memory map}; "
                            "wrap plain MiniGrid envs in teacher_wrappers.MemoryMapObservation")
        style, table, paper_task = _task_info(env, text_style, task, planner)
        if style == SUITE_STYLE and "mission" not in single.spaces:
            raise TypeError("the suite text style needs the mission: sub-envs must observe obs['mission'] "
                            "(wrap plain MiniGrid envs in teacher_wrappers.MemoryMapObservation)")
        self.teacher = make_teacher(planner, style, table, planner_kwargs, paper_task)
        n_actions = int(env.single_action_space.n)
        self.single_observation_space = _with_teacher_space(single, n_actions)
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
        if isinstance(self.teacher, SuiteTeacher):
            missions = [decode(vector) for vector in obs["mission"]]
            results = self.teacher.act(maps, visits=counts, keys=keys, missions=missions)
        else:
            results = self.teacher.act(maps, visits=counts, keys=keys)
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
        _check_visits(state["visits"], self.num_envs)
        self.teacher.load_state_dict(state["teacher"])
        self._visits = [dict(visits) for visits in state["visits"]]

    def visits_state(self) -> list[dict[bytes, int]]:
        """Each sub-env's visit counts (older name; `teacher_state_dict()` holds them with the teacher's state)."""
        return [dict(visits) for visits in self._visits]

    def restore_visits(self, visits: list[dict[bytes, int]]) -> None:
        _check_visits(visits, self.num_envs)
        self._visits = [dict(v) for v in visits]


def _check_visits(visits: list, num_envs: int) -> None:
    if len(visits) != num_envs:
        raise ValueError(f"the teacher state holds visit counts of {len(visits)} sub-envs, this vector env has "
                         f"{num_envs}")


def _task_info(env: gym.vector.VectorEnv, text_style: str | None, task: str | None,
               planner: Planner | str = "recorded") -> tuple[str, str, bool]:
    """Text style, recorded table and whether the sub-envs are a paper task, read from their class
    (works across processes)."""
    try:
        styles = env.get_attr("text_style")
        tables = env.get_attr("recorded_table")
    except AttributeError:  # plain MiniGrid / BabyAI sub-envs
        styles, tables = [None], ["SimpleDoorKey"]
    return text_style or default_text_style(styles[0], planner), task or tables[0], styles[0] is not None


class TeacherWorkersVectorEnv(gym.vector.VectorWrapper):
    """Sub-envs in worker processes, each worker with its own TeacherVectorWrapper over its sub-envs.

    For planners that cost no LLM call (recorded, rules): the teacher's work spreads over the cores
    instead of running for every sub-env in the main process, and each worker asks its teacher once
    per step for its whole group, after stepping it (as TeacherVectorWrapper does here). Offers what
    the training scripts use of TeacherVectorWrapper: `teacher_enabled`, `teacher_stats()` (summed
    over the workers' teachers), `teacher_state_dict()` / `load_teacher_state_dict()` (the workers'
    teachers and visit counts, and the main process's teacher), and `teacher`, a teacher in the main
    process with the same planner (for its attributes and for teacher-alone episodes; it does not act for
    the sub-envs).
    """

    def __init__(self, env: GroupedAsyncVectorEnv, teacher: Teacher):
        super().__init__(env)
        self.teacher = teacher
        self._enabled = True

    @property
    def teacher_enabled(self) -> bool:
        return self._enabled

    @teacher_enabled.setter
    def teacher_enabled(self, enabled: bool) -> None:
        if enabled != self._enabled:  # one round trip to the workers, and only on a change
            self.env.set_group_attr("teacher_enabled", bool(enabled))
            self._enabled = bool(enabled)

    def teacher_stats(self) -> dict:
        """The counters of the workers' teachers, summed (the rates worked out from the sums)."""
        summaries = self.env.call_groups("teacher_stats")
        total = sum((TeacherStats.of(summary) for summary in summaries), TeacherStats())
        return {**total.summary(), "planner": summaries[0]["planner"], "teachers": len(summaries)}

    def teacher_state_dict(self) -> dict:
        """Each worker's teacher state, each sub-env's visit counts and the main process's teacher state."""
        states = self.env.call_groups("teacher_state_dict")
        return {"teacher": self.teacher.state_dict(), "workers": [state["teacher"] for state in states],
                "visits": [visits for state in states for visits in state["visits"]]}

    def load_teacher_state_dict(self, state: dict) -> None:
        """Continue from `teacher_state_dict()`, on sub-envs in the state they were in then.

        A state saved with as many workers continues exactly; one saved with another number of workers
        (another machine) gives the first worker the summed counters and every worker all the answers.
        """
        _check_visits(state["visits"], self.num_envs)
        workers = state["workers"]
        if len(workers) != len(self.env.groups):
            merged = {**workers[0], "stats": asdict(sum((TeacherStats.of(w["stats"]) for w in workers), TeacherStats())),
                      "memo": {text: answer for w in workers for text, answer in w["memo"].items()},
                      "unknown": sorted({text for w in workers for text in w["unknown"]})}
            merged["planner"] = {**workers[0]["planner"], "queries": sum(w["planner"]["queries"] for w in workers)}
            idle = {**merged, "stats": asdict(TeacherStats()), "planner": {**merged["planner"], "queries": 0}}
            workers = [merged] + [idle] * (len(self.env.groups) - 1)
        self.teacher.load_state_dict(state["teacher"])
        self.env.call_groups("load_teacher_state_dict", [
            ({"teacher": teacher, "visits": [state["visits"][i] for i in group]},)
            for teacher, group in zip(workers, self.env.groups)])

    def visits_state(self) -> list[dict[bytes, int]]:
        """Each sub-env's visit counts (older name; `teacher_state_dict()` holds them with the teachers' states)."""
        return [visits for group in self.env.call_groups("visits_state") for visits in group]

    def restore_visits(self, visits: list[dict[bytes, int]]) -> None:
        _check_visits(visits, self.num_envs)
        self.env.call_groups("restore_visits", [([visits[i] for i in group],) for group in self.env.groups])


def make_teacher_vector_env(env_fns: Sequence[Callable[[], gym.Env]], planner: Planner | str = "recorded",
                            planner_kwargs: dict | None = None, asynchronous: bool = False,
                            workers: int | None = None, **vector_kwargs
                            ) -> TeacherVectorWrapper | TeacherWorkersVectorEnv:
    """A vector env of `env_fns` whose observations carry obs["teacher_probs"].

    Asynchronous with a planner that costs no LLM call (`planner.live` is False: recorded, rules):
    each worker process runs a TeacherVectorWrapper over its sub-envs, so the teacher scales with the
    cores (TeacherWorkersVectorEnv).
    Otherwise one teacher in this process answers all sub-envs with one batched planner call per
    step (TeacherVectorWrapper), so an LLM sees batches and its answers are asked for once.
    Asynchronous sub-envs are spread over `workers` processes (default: one per usable core; see
    teacher_wrappers.vector.make_vector_env). `vector_kwargs` go to the vector env (e.g. autoreset_mode).
    """
    if not asynchronous:
        return TeacherVectorWrapper(gym.vector.SyncVectorEnv(list(env_fns), **vector_kwargs), planner=planner,
                                    planner_kwargs=planner_kwargs)
    probe = env_fns[0]()  # the task's text style and recorded table, for the teacher here
    try:
        teacher = _teacher_for(probe.unwrapped, planner, planner_kwargs)
    finally:
        probe.close()
    if teacher.planner.live:  # an LLM: one batched query per step, here
        return TeacherVectorWrapper(make_vector_env(env_fns, True, workers, **vector_kwargs), planner=teacher.planner)
    planner_arg = planner if isinstance(planner, str) else teacher.planner
    wrap = functools.partial(TeacherVectorWrapper, planner=planner_arg, planner_kwargs=planner_kwargs)
    return TeacherWorkersVectorEnv(GroupedAsyncVectorEnv(env_fns, workers=workers, wrap_group=wrap, **vector_kwargs),
                                   teacher)
