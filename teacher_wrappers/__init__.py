"""teacher-wrappers: an LLM teaches a small RL agent through Gymnasium wrappers.

`import teacher_wrappers` registers the tasks (TeacherWrappers/SimpleDoorKey-v0, ...).
"""

from teacher_wrappers.envs import NAMESPACE, TASKS, register_tasks
from teacher_wrappers.episodic import RevisitCount
from teacher_wrappers.memory import MemoryMap, MemoryMapObservation
from teacher_wrappers.planners import make_planner
from teacher_wrappers.teacher import Teacher
from teacher_wrappers.wrappers import (
    TeacherVectorWrapper,
    TeacherWorkersVectorEnv,
    TeacherWrapper,
    make_teacher,
    make_teacher_vector_env,
)

register_tasks()

__version__ = "0.1.0"
__all__ = ["NAMESPACE", "TASKS", "MemoryMap", "MemoryMapObservation", "RevisitCount", "Teacher", "TeacherVectorWrapper",
           "TeacherWorkersVectorEnv", "TeacherWrapper", "make_planner", "make_teacher", "make_teacher_vector_env"]
