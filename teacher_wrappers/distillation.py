"""Distillation from a teacher: the pieces of `algorithms/ppo_teacher.py`'s loss that other training code reuses.

Loss = PPO + lambda_t * KL(target || student), where the target is the teacher's suggestion (or, with a
Q-filter, only its trusted part) and lambda_t follows a schedule:

- `reference`: the paper's: lambda falls by a constant per iteration to a floor, and to 0 at an iteration.
- `linear`: lambda falls linearly to 0 over a number of frames.
- `adaptive` (the default): full weight while the student's return trails the teacher's, none once it
  matches it, and, as `linear`, none after the deadline.

`SuccessBuffer` keeps states of the student's own successful episodes with the teacher's suggestions there.
"""

from __future__ import annotations

import numpy as np
import torch

SCHEDULES = ("reference", "linear", "adaptive")


class SuccessBuffer:
    """States of the student's own successful episodes with the teacher's suggestions there (a ring buffer).

    Imitating the teacher on every visited state also teaches its mistakes (an LLM plan that drops the right
    key for the wrong one); on states that led to success its advice was, at least, not fatal.
    """

    def __init__(self, capacity, obs_shape, n_actions):
        self.obs = np.zeros((capacity,) + obs_shape, dtype=np.uint8)
        self.teacher = np.zeros((capacity, n_actions), dtype=np.float32)
        self.size, self.next = 0, 0

    def add(self, obs, teacher):
        for start in range(0, len(obs), len(self.obs)):
            chunk = slice(start, start + len(self.obs))
            count = len(obs[chunk])
            index = (self.next + np.arange(count)) % len(self.obs)
            self.obs[index], self.teacher[index] = obs[chunk], teacher[chunk]
            self.next, self.size = (self.next + count) % len(self.obs), min(self.size + count, len(self.obs))

    def sample(self, count, device):
        index = torch.randint(self.size, (count,)).numpy()
        return torch.as_tensor(self.obs[index], device=device), torch.as_tensor(self.teacher[index], device=device)


def distillation_target(teacher, logits, q, margin):
    """The teacher's suggestion; with a Q-filter, only its actions valued about as high as the student's choice."""
    if q is None:
        return teacher
    q = q.detach()
    trusted = q >= q.gather(1, logits.detach().argmax(-1, keepdim=True)) - margin
    target = teacher * trusted
    return target / target.sum(-1, keepdim=True).clamp_min(1e-8)  # a row with nothing trusted is all 0: no loss


def distillation_weight(args, iteration: int, global_step: int, recent_return: float | None,
                        teacher_return: float) -> float:
    """lambda_t for the iteration about to be trained (iterations count from 1). `args` carries the schedule's
    settings: `schedule`, `lambda_start`, and per schedule `lambda_decay`, `lambda_floor`, `teacher_off_iteration`
    (reference) or `linear_frames` (linear, adaptive); `recent_return` is the student's recent mean return (None
    while too few episodes), `teacher_return` the teacher's acting alone (adaptive)."""
    if args.schedule == "reference":
        if iteration >= args.teacher_off_iteration:
            return 0.0
        return max(args.lambda_start - args.lambda_decay * (iteration - 1), args.lambda_floor)
    if args.schedule == "linear":
        return args.lambda_start * max(0.0, 1.0 - global_step / args.linear_frames)
    # adaptive: full weight while the student trails the teacher, none once it matches it; and, as the
    # linear schedule, none after linear_frames, so that reward takes over from a teacher that the
    # student cannot match by imitation (a looping LLM plan, say)
    deadline = max(0.0, 1.0 - global_step / args.linear_frames)
    if recent_return is None or teacher_return <= 0:
        return args.lambda_start * deadline
    return args.lambda_start * deadline * float(np.clip(1.0 - recent_return / teacher_return, 0.0, 1.0))
