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


def make_teacher(planner: Planner | str, text_style: TextStyle | str, task: str, planner_kwargs: dict | None,
                 paper_task: bool = False) -> Teacher:
    """The teacher for a text style; outside the paper's tasks it never idles on `done`."""
    kwargs = {"task": task, **(planner_kwargs or {})} if isinstance(planner, str) else {}
    teacher = Teacher(planner, text_style, **kwargs)
    if not paper_task:
        teacher.idle_action = LEFT
    return teacher


def teacher_for(env_unwrapped, planner: Planner | str, planner_kwargs: dict | None,
                text_style: TextStyle | str | None = None) -> Teacher:
    """The teacher for an env: its task's text style and recorded table, if it is one of the paper's tasks."""
    task_style = getattr(env_unwrapped, "text_style", None)
    style = text_style or default_text_style(task_style, planner)
    return make_teacher(planner, style, getattr(env_unwrapped, "recorded_table", "SimpleDoorKey"), planner_kwargs,
                        paper_task=task_style is not None)


def task_info(env: gym.vector.VectorEnv, text_style: TextStyle | str | None, task: str | None,
               planner: Planner | str = "recorded") -> tuple[TextStyle | str, str, bool]:
    """Text style, recorded table and whether the sub-envs are a paper task, read from their class
    (works across processes)."""
    try:
        styles = env.get_attr("text_style")
        tables = env.get_attr("recorded_table")
    except AttributeError:  # plain MiniGrid / BabyAI sub-envs
        styles, tables = [None], ["SimpleDoorKey"]
    return text_style or default_text_style(styles[0], planner), task or tables[0], styles[0] is not None


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
