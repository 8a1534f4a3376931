"""Episode statistics: the returns and lengths of the episodes being played, the success rate and mean return of
the most recent ones, and the learning curve, one point per iteration. Every task here rewards success and only
success, so an episode succeeded where its last reward is positive."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

CURVE = ("frames", "wall_seconds", "success_rate", "episodic_return", "episodes")


def no_scalar(tag: str, value: float, step: int) -> None:
    """A scalar log that keeps nothing (until the run opens TensorBoard)."""


class EpisodeStats:
    """The episodes of `num_envs` sub-envs, counted one vector step at a time (`record_step`). The first
    `greedy_envs` act greedily: their episodes are logged apart and left out of the success rate, which follows
    the sampled policy over the last `window` episodes. `curves` names the script's own columns of the curve.
    `scalar(tag, value, step)` logs each finished episode (TensorBoard's add_scalar)."""

    def __init__(self, num_envs: int, greedy_envs: int = 0, window: int = 100, curves: Sequence[str] = (),
                 scalar: Callable[[str, float, int], None] = no_scalar):
        self.num_envs, self.greedy_envs, self.scalar = num_envs, greedy_envs, scalar
        self.global_step = 0
        self.episode_returns = np.zeros(num_envs)
        self.episode_lengths = np.zeros(num_envs, dtype=int)
        self.recent: deque = deque(maxlen=window)  # (success, return) of the most recent episodes
        self.curve: dict[str, list] = {key: [] for key in (*CURVE, *curves)}

    def record_step(self, reward: np.ndarray, done: np.ndarray) -> list[tuple[int, bool]]:
        """Counts one vector step; returns (env index, success) of the episodes it finished."""
        self.global_step += self.num_envs
        self.episode_returns += reward
        self.episode_lengths += 1
        finished = []
        for i in np.flatnonzero(done):
            success = bool(reward[i] > 0)
            if i < self.greedy_envs:
                self.scalar("charts/greedy_episodic_return", self.episode_returns[i], self.global_step)
            else:
                self.recent.append((success, self.episode_returns[i]))
                self.scalar("charts/episodic_return", self.episode_returns[i], self.global_step)
                self.scalar("charts/episodic_length", self.episode_lengths[i], self.global_step)
            self.episode_returns[i], self.episode_lengths[i] = 0.0, 0
            finished.append((int(i), success))
        return finished

    @property
    def success_rate(self) -> float:
        return float(np.mean([s for s, _ in self.recent])) if self.recent else 0.0

    def mean_return(self, at_least: int = 1) -> float | None:
        """Mean return of the recent episodes (None while fewer than `at_least`; 0.0 with none at all)."""
        if len(self.recent) < at_least:
            return None if at_least > 1 else 0.0
        return float(np.mean([r for _, r in self.recent]))

    def add_point(self, wall_seconds: float, **values) -> None:
        """A point of the learning curve, now: frames, wall-clock seconds, success rate, mean return, the number of
        recent episodes, and the script's own `values` (one per name of `curves`)."""
        point = {"frames": self.global_step, "wall_seconds": wall_seconds, "success_rate": self.success_rate,
                 "episodic_return": self.mean_return(), "episodes": len(self.recent), **values}
        for key, value in point.items():
            self.curve[key].append(value)

    def state_dict(self) -> dict:
        """Copies: they do not change with the statistics."""
        return {"global_step": self.global_step, "episode_returns": self.episode_returns.copy(),
                "episode_lengths": self.episode_lengths.copy(), "recent": list(self.recent),
                "curve": {key: list(value) for key, value in self.curve.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` (copied: `state` stays as it was)."""
        self.global_step = state["global_step"]
        self.episode_returns, self.episode_lengths = state["episode_returns"].copy(), state["episode_lengths"].copy()
        self.recent.clear()
        self.recent.extend(state["recent"])
        self.curve = copy.deepcopy(state["curve"])


def first_reaching(curve: dict, rate: float, window: int) -> int | None:
    """The index of the first point of a learning curve whose success rate reached `rate` over a full window
    of episodes (a handful of early episodes proves nothing); None if none did."""
    return next((i for i, (value, count) in enumerate(zip(curve["success_rate"], curve["episodes"]))
                 if value >= rate and count >= window), None)
