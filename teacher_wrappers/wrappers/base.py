"""What the teacher wrappers share: the teacher an environment gets, and the observation space it adds to."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from teacher_wrappers.planners import Planner
from teacher_wrappers.skills import LEFT
from teacher_wrappers.styles import TextStyle
from teacher_wrappers.styles.suite import SUITE_STYLE
from teacher_wrappers.teacher import Teacher


def default_text_style(task_style: str | None, planner: Planner | str) -> str:
    """The paper tasks keep their style; other MiniGrid envs get the suite's, except for the recorded
    planner, whose table holds texts of the reference style only."""
    if task_style is not None:
        return task_style
    name = planner if isinstance(planner, str) else getattr(planner, "name", "")
    return "plain" if name == "recorded" else SUITE_STYLE


def task_of(env: gym.Env | gym.vector.VectorEnv) -> tuple[str | None, str]:
    """(text style, recorded table) of an env's task, read off its class: the paper's tasks name both; plain
    MiniGrid and BabyAI envs neither, (None, "SimpleDoorKey"). A vector env's come from its first sub-env
    (across processes, for worker sub-envs)."""
    if isinstance(env, gym.vector.VectorEnv):
        try:
            return env.get_attr("text_style")[0], env.get_attr("recorded_table")[0]
        except AttributeError:  # plain MiniGrid / BabyAI sub-envs
            return None, "SimpleDoorKey"
    base = env.unwrapped
    return getattr(base, "text_style", None), getattr(base, "recorded_table", "SimpleDoorKey")


def make_teacher(planner: Planner | str = "recorded", text_style: TextStyle | str | None = None,
                 planner_kwargs: dict | None = None, task: tuple[str | None, str] = (None, "SimpleDoorKey")) -> Teacher:
    """The teacher of a planner (a name, built with `planner_kwargs` for the task's recorded table, or a
    Planner) and a text style (default: the task's, see `default_text_style`) for a task, `task_of(env)`.
    Outside the paper's tasks the teacher never idles on `done`."""
    task_style, table = task
    kwargs = {"task": table, **(planner_kwargs or {})} if isinstance(planner, str) else {}
    teacher = Teacher(planner, text_style or default_text_style(task_style, planner), **kwargs)
    if task_style is None:
        teacher.idle_action = LEFT
    return teacher


def with_teacher_space(space: gym.Space, n_actions: int) -> gym.spaces.Dict:
    """`space` with obs["teacher_probs"] added."""
    if not isinstance(space, gym.spaces.Dict):
        raise TypeError(f"TeacherWrapper needs a Dict observation space to add 'teacher_probs' to, got {space}")
    probs = gym.spaces.Box(0.0, 1.0, (n_actions,), dtype=np.float32)
    return gym.spaces.Dict({**space.spaces, "teacher_probs": probs})


def check_visits(visits: list, num_envs: int) -> None:
    if len(visits) != num_envs:
        raise ValueError(f"the teacher state holds visit counts of {len(visits)} sub-envs, this vector env has "
                         f"{num_envs}")
