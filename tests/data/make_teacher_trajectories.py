"""Regenerate tests/data/teacher_trajectories.npz: the teacher's outputs recorded on trajectories.

    python tests/data/make_teacher_trajectories.py

Recorded with the teacher of commit 34b53d2, before the teacher was made cheaper (memos, fast paths); the
test `tests/test_teacher_trajectories.py` checks that the current teacher gives the same
probabilities on the same maps. Only rerun it on purpose, when the teacher's behaviour changes.
Actions mix the teacher's suggestion (so episodes reach keys, doors, loops) with random ones (so
they also bump into walls and revisit states, where the loop breaker acts).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

import teacher_wrappers
from teacher_wrappers import TeacherWrapper

PLANNERS = ("recorded", "rules")
SEEDS = (0, 1, 2)
STEPS = 200  # per seed; an episode that ends is followed by the next one (seed + 100 * episode)
RANDOM = 0.4  # share of uniformly random actions


def record(task: str, planner: str, seed: int) -> dict[str, np.ndarray]:
    env = TeacherWrapper(gym.make(f"TeacherWrappers/{task}-v0"), planner=planner)
    rng = np.random.default_rng(seed)
    resets, images, probs, actions = [0], [], [], []
    obs, _ = env.reset(seed=seed)
    episode = 0
    for step in range(STEPS):
        images.append(obs["image"])
        probs.append(obs["teacher_probs"])
        p = obs["teacher_probs"].astype(np.float64)
        action = int(rng.integers(7)) if rng.random() < RANDOM else int(rng.choice(7, p=p / p.sum()))
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + 100 * episode)
            resets.append(step + 1)
    return {"images": np.stack(images), "probs": np.stack(probs), "actions": np.array(actions, dtype=np.int8),
            "resets": np.array(resets, dtype=np.int32)}


def main() -> None:
    arrays = {}
    for task in teacher_wrappers.TASKS:
        for planner in PLANNERS:
            for seed in SEEDS:
                for name, value in record(task, planner, seed).items():
                    arrays[f"{task}/{planner}/{seed}/{name}"] = value
    path = Path(__file__).with_name("teacher_trajectories.npz")
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB, {len(arrays)} arrays)")


if __name__ == "__main__":
    main()
