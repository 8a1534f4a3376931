"""A task that raises in the middle of training, for tests of what a crash leaves behind.

`gym.make("failing_env:FailingDoorKey-v0")` (with tests/ on PYTHONPATH) is SimpleDoorKey whose every
sub-env raises RuntimeError at its step number $FAILING_ENV_AT (never when the variable is unset).
"""

import os

import gymnasium as gym

import teacher_wrappers  # noqa: F401  (registers the tasks)


class FailAt(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.steps = 0  # survives pickling: a resumed run goes on counting

    def step(self, action):
        self.steps += 1
        if str(self.steps) == os.environ.get("FAILING_ENV_AT"):
            raise RuntimeError(f"sensor failure at step {self.steps}")
        return self.env.step(action)


def make():
    return FailAt(gym.make("TeacherWrappers/SimpleDoorKey-v0"))


if "FailingDoorKey-v0" not in gym.registry:
    gym.register("FailingDoorKey-v0", entry_point=make)
