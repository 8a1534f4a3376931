"""Distillation from a teacher: the pieces of `algorithms/ppo_teacher.py`'s loss that other training code reuses.

Loss = PPO + lambda_t * KL(target || student), where the target is the teacher's suggestion (or, with a
Q-filter, only its trusted part) and lambda_t follows a schedule:

- `ReferenceSchedule`: the paper's: lambda falls by a constant per iteration to a floor, and to 0 at an iteration.
- `LinearSchedule`: lambda falls linearly to 0 over a number of frames.
- `AdaptiveSchedule` (the default): full weight while the student's return trails the teacher's, none once
  it matches it, and, as `linear`, none after the deadline.

A schedule is called with (iteration, global_step, recent_return, teacher_return) and gives lambda;
`distillation_loss(logits, teacher_probs, lam)` is the term to add to any RL loss.

`SuccessBuffer` keeps states of the student's own successful episodes with the teacher's suggestions there (or,
where the teacher was not asked, the action the student took: self-imitation once the teacher is off);
`SuccessEpisodes` keeps them as whole episodes, for a recurrent student. `without_loops` cuts the loops out of
an episode before it goes to the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


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

    def state_dict(self) -> dict:
        """A copy of the contents, to checkpoint: until the buffer is full only its filled rows (it fills from row 0),
        so that a snapshot every iteration costs what it holds, not its capacity."""
        held = len(self.obs) if self.size == len(self.obs) else self.size
        return {"obs": self.obs[:held].copy(), "teacher": self.teacher[:held].copy(), "size": self.size,
                "next": self.next}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` (or from the full arrays older checkpoints hold)."""
        held = len(state["obs"])
        self.obs[:held], self.obs[held:] = state["obs"], 0
        self.teacher[:held], self.teacher[held:] = state["teacher"], 0
        self.size, self.next = state["size"], state["next"]


class SuccessEpisodes:
    """`SuccessBuffer` for a recurrent student: whole successful episodes, since its output on a state depends on
    the steps that led there. Each begins at a reset, so the zero state it is run from is exactly the state it
    began with. Once they hold more than `capacity` states the oldest episodes go first (the newest stays).
    `obs_shape` and `n_actions` are `SuccessBuffer`'s arguments, not needed here."""

    def __init__(self, capacity, obs_shape=None, n_actions=None):
        self.capacity = capacity
        self.episodes: list[tuple[np.ndarray, np.ndarray]] = []  # (observations, targets) of each, in order
        self.size = 0  # states held

    def add(self, obs, teacher):
        """One whole episode: its observations and imitation targets, step by step."""
        self.episodes.append((np.array(obs, dtype=np.uint8), np.array(teacher, dtype=np.float32)))  # copies
        self.size += len(obs)
        while self.size > self.capacity and len(self.episodes) > 1:
            self.size -= len(self.episodes.pop(0)[0])

    def sample(self, count, device):
        """Episodes drawn at random, about `count` states in all: (observations, targets, episode lengths), the
        episodes one after another (see `RecurrentAgent.episode_states`)."""
        drawn = torch.randint(len(self.episodes), (max(1, round(count * len(self.episodes) / self.size)),)).tolist()
        obs, teacher = (np.concatenate([self.episodes[i][part] for i in drawn]) for part in (0, 1))
        lengths = [len(self.episodes[i][0]) for i in drawn]
        return torch.as_tensor(obs, device=device), torch.as_tensor(teacher, device=device), lengths

    def state_dict(self) -> dict:
        """The episodes held, to checkpoint (a new list: an episode's arrays never change once added)."""
        return {"capacity": self.capacity, "episodes": list(self.episodes), "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`."""
        self.capacity, self.episodes, self.size = state["capacity"], list(state["episodes"]), state["size"]


def without_loops(states: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An episode's (states, targets) with its loops cut out: where a state comes again, the steps since its first
    visit are dropped and its target is the one of its last visit, the one that moved on. In a memory-map
    observation (static world) the same observation is the same state, so what is left is the path the episode
    took without the detours that led back to where it was: a greedy student that imitates it has no loop to fall
    into. States and targets are arrays with one row per step."""
    keys = [row.tobytes() for row in np.ascontiguousarray(states).reshape(len(states), -1)]
    kept: list[int] = []  # the steps of the path so far
    position: dict[bytes, int] = {}  # state -> its index in `kept`
    for step, key in enumerate(keys):
        index = position.get(key)
        if index is not None:  # a loop: back where it was at kept[index]; forget the steps since
            for dropped in kept[index:]:
                del position[keys[dropped]]
            del kept[index:]
        position[key] = len(kept)
        kept.append(step)
    return states[kept], targets[kept]


def distillation_target(teacher, logits, q, margin):
    """The teacher's suggestion; with a Q-filter, only its actions valued about as high as the student's choice."""
    if q is None:
        return teacher
    q = q.detach()
    trusted = q >= q.gather(1, logits.detach().argmax(-1, keepdim=True)) - margin
    target = teacher * trusted
    return target / target.sum(-1, keepdim=True).clamp_min(1e-8)  # a row with nothing trusted is all 0: no loss


def kl_to_teacher(logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student), the batch mean: `teacher_probs` (batch, n_actions) rows of probabilities (a row
    of zeros adds nothing), `logits` the student's (batch, n_actions)."""
    log_student = F.log_softmax(logits, dim=-1)
    return (torch.xlogy(teacher_probs, teacher_probs) - teacher_probs * log_student).sum(-1).mean()


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, weight: float) -> torch.Tensor:
    """The distillation term to add to an RL loss: `weight * KL(teacher || student)` (see `kl_to_teacher`), with
    `weight` a schedule's lambda for this update. Differentiable in `logits`; the teacher is a constant.

        lam = schedule(iteration=i, global_step=frames, recent_return=..., teacher_return=...)
        loss = ppo_loss + distillation_loss(logits, batch_teacher_probs, lam)
    """
    if teacher_probs.shape != logits.shape:
        raise ValueError(f"teacher_probs has shape {tuple(teacher_probs.shape)}, the logits {tuple(logits.shape)}")
    return weight * kl_to_teacher(logits, teacher_probs)


@dataclass(frozen=True)
class ReferenceSchedule:
    """The paper's: lambda falls by `decay` per iteration from `start` to `floor`, and is 0 from `off_iteration`."""

    start: float = 10.0
    decay: float = 0.005
    floor: float = 0.1
    off_iteration: int = 1000

    def __call__(self, iteration: int, global_step: int = 0, recent_return: float | None = None,
                 teacher_return: float = 0.0) -> float:
        if iteration >= self.off_iteration:
            return 0.0
        return max(self.start - self.decay * (iteration - 1), self.floor)


@dataclass(frozen=True)
class LinearSchedule:
    """lambda falls linearly from `start` to 0 over `frames` env steps."""

    start: float = 10.0
    frames: int = 100_000

    def __call__(self, iteration: int = 1, global_step: int = 0, recent_return: float | None = None,
                 teacher_return: float = 0.0) -> float:
        return self.start * max(0.0, 1.0 - global_step / self.frames)


@dataclass(frozen=True)
class AdaptiveSchedule:
    """Full weight while the student's recent return trails the teacher's (acting alone), none once it matches
    it; and, as `LinearSchedule`, none after `frames`, so that reward takes over from a teacher the student
    cannot match by imitation (a looping LLM plan, say). `recent_return` None (too few episodes yet) or a
    teacher return <= 0 give the linear schedule's weight."""

    start: float = 10.0
    frames: int = 100_000

    def __call__(self, iteration: int = 1, global_step: int = 0, recent_return: float | None = None,
                 teacher_return: float = 0.0) -> float:
        deadline = max(0.0, 1.0 - global_step / self.frames)
        if recent_return is None or teacher_return <= 0:
            return self.start * deadline
        return self.start * deadline * float(np.clip(1.0 - recent_return / teacher_return, 0.0, 1.0))


SCHEDULES = {"reference": ReferenceSchedule, "linear": LinearSchedule, "adaptive": AdaptiveSchedule}


def make_schedule(name: str, start: float = 10.0, decay: float = 0.005, floor: float = 0.1, off_iteration: int = 1000,
                  frames: int = 100_000):
    """The schedule `name` (reference, linear or adaptive) with the settings it uses (the others are ignored)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if name == "reference":
        return ReferenceSchedule(start, decay, floor, off_iteration)
    return SCHEDULES[name](start, frames)
