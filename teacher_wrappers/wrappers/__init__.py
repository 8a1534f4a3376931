"""The teacher's wrappers: one environment (`TeacherWrapper`), a vector env with one teacher
(`TeacherVectorWrapper`), and sub-envs in worker processes with a teacher each (`TeacherWorkersVectorEnv`);
`make_teacher_vector_env` builds the vector env that suits the planner, and `make_teacher` is the one way
from a planner and a text style to the teacher they all hold."""

from teacher_wrappers.wrappers.base import default_text_style, make_teacher, task_of
from teacher_wrappers.wrappers.single import TeacherWrapper
from teacher_wrappers.wrappers.vector import TeacherVectorWrapper, make_teacher_vector_env
from teacher_wrappers.wrappers.workers import TeacherWorkersVectorEnv

__all__ = ["TeacherVectorWrapper", "TeacherWorkersVectorEnv", "TeacherWrapper", "default_text_style", "make_teacher",
           "make_teacher_vector_env", "task_of"]
