"""Train a student with Stable-Baselines3 and an LLM teacher (the recorded answers of the paper's LLM).

    pip install "teacher-wrappers[sb3]"
    python examples/sb3_teacher.py                    # a short demo run (about a minute)
    python examples/sb3_teacher.py --frames 100000    # solves SimpleDoorKey (success >= 0.9, sampled actions)

Plain MiniGrid/BabyAI ids: wrap `teacher_wrappers.student.student_env(env_id)` (the memory map and the mission
as a vector) instead of `gym.make(env_id)`.
"""

import argparse

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env

from teacher_wrappers import TeacherWrapper
from teacher_wrappers.sb3 import TeacherPPO, success_rate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--env-id", default="TeacherWrappers/SimpleDoorKey-v0")
parser.add_argument("--frames", type=int, default=8192)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--tensorboard", default=None, help="a folder for TensorBoard's events (teacher/* scalars)")
args = parser.parse_args()

env = make_vec_env(lambda: TeacherWrapper(gym.make(args.env_id), planner="recorded"), n_envs=16, seed=args.seed)
model = TeacherPPO("MultiInputPolicy", env, seed=args.seed, tensorboard_log=args.tensorboard)
model.learn(args.frames)
print(f"teacher alone: mean return {model.teacher_return:.2f}; lambda now {model.lam:.2f}")

# The student acts alone (the policy never reads teacher_probs; success_rate switches the teacher off).
play = TeacherWrapper(gym.make(args.env_id), planner="recorded")
print(f"student: {success_rate(model, play, 20):.2f} of 20 episodes solved (sampled actions)")
