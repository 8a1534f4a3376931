"""One-line errors (exit 2) for bad settings, before anything of a run is written."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from minigrid.minigrid_env import MiniGridEnv


def fail(message: str, code: int = 2):
    """Ends the program with one line on stderr (exit 2: bad input)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500] or type(error).__name__


def check_choice(value: str, valid: Sequence[str], what: str, plural: str = "") -> None:
    """One line and exit 2 unless `value` is one of `valid`: "unknown <what> 'x'; valid <plural>: a, b"."""
    if value not in valid:
        fail(f"unknown {what} {value!r}; valid{' ' + plural if plural else ''}: {', '.join(valid)}")


def check_args(args: Any) -> None:
    """The checks every training script needs: counts, the greedy fraction, the budget, the student, the env id."""
    from teacher_wrappers.envs import NAMESPACE, TASKS
    from teacher_wrappers.student import STUDENTS

    for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0 <= args.greedy_fraction < 1:
        fail(f"--greedy-fraction must be at least 0 and below 1, got {args.greedy_fraction}: at least one "
             "environment samples its actions")
    batch = args.num_envs * args.num_steps
    if args.total_timesteps < batch:
        fail(f"--total-timesteps {args.total_timesteps} is below one batch (--num-envs x --num-steps = {batch}): "
             "nothing would be trained")
    if args.num_minibatches > batch:
        fail(f"--num-minibatches {args.num_minibatches} is more than the batch of {batch} samples")
    student = getattr(args, "student", "mlp")
    check_choice(student, STUDENTS, "--student")
    if student == "lstm" and args.num_envs % args.num_minibatches:
        fail(f"--student lstm trains on minibatches of whole environments: --num-envs {args.num_envs} must be a "
             f"multiple of --num-minibatches {args.num_minibatches}")
    tasks = ", ".join(f"{NAMESPACE}/{task}-v0" for task in TASKS)
    try:
        env = gym.make(args.env_id)  # also finds ids registered by a module: "my_module:MyEnv-v0"
    except (gym.error.Error, ImportError, TypeError, ValueError):
        fail(f"unknown env id {args.env_id!r}; valid: {tasks}, or any registered MiniGrid id "
             "(e.g. MiniGrid-DoorKey-8x8-v0)")
    base = env.unwrapped
    env.close()
    if not isinstance(base, MiniGridEnv):
        fail(f"{args.env_id} is not a MiniGrid environment ({type(base).__name__}): the student reads MiniGrid "
             f"grids; valid: {tasks}, or any registered MiniGrid id")
