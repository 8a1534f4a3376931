"""The teacher's wrappers: one environment (`TeacherWrapper`), a vector env with one teacher
(`TeacherVectorWrapper`), and sub-envs in worker processes with a teacher each (`TeacherWorkersVectorEnv`);
`make_teacher_vector_env` builds the vector env that suits the planner."""

from teacher_wrappers.wrappers.base import default_text_style, make_teacher
from teacher_wrappers.wrappers.single import TeacherWrapper
from teacher_wrappers.wrappers.vector import (
           TeacherVectorWrapper,
           make_teacher_vector_env,
)
from teacher_wrappers.wrappers.workers import TeacherWorkersVectorEnv

__all__ = ["TeacherVectorWrapper", "TeacherWorkersVectorEnv", "TeacherWrapper", "default_text_style", "make_teacher",
           "make_teacher_vector_env"]
