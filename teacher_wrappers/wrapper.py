"""The teacher's wrappers, by their former module (they now live in `teacher_wrappers.wrappers`)."""

from teacher_wrappers.teacher import Teacher
from teacher_wrappers.grouped import GroupedAsyncVectorEnv, make_vector_env
from teacher_wrappers.wrappers import (
                                       TeacherVectorWrapper,
                                       TeacherWorkersVectorEnv,
                                       TeacherWrapper,
                                       default_text_style,
                                       make_teacher,
                                       make_teacher_vector_env,
)

__all__ = ["GroupedAsyncVectorEnv", "Teacher", "TeacherVectorWrapper", "TeacherWorkersVectorEnv", "TeacherWrapper",
           "default_text_style", "make_teacher", "make_teacher_vector_env", "make_vector_env"]
