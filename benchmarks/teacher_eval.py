"""Runs a teacher alone (actions sampled from teacher_probs) and reports its success per task.

    python -m benchmarks.teacher_eval --planners recorded rules --episodes 500

Writes benchmarks/results/teacher_eval.json and teacher_eval.md.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro
from tqdm import tqdm

import teacher_wrappers
from teacher_wrappers import TeacherWrapper

RESULTS = Path(__file__).parent / "results"


@dataclass
class Args:
    planners: list[str] = field(default_factory=lambda: ["recorded", "rules"])
    """planner names to evaluate (each with default settings)"""
    tasks: list[str] = field(default_factory=lambda: list(teacher_wrappers.TASKS))
    """task names (ids are TeacherWrappers/<task>-v0) or full gymnasium ids"""
    episodes: int = 500
    """episodes per task and planner"""
    seed: int = 0
    """first environment seed; episode i uses seed + i"""
    greedy: bool = False
    """take the teacher's most probable action instead of sampling from teacher_probs"""
    out: str = "teacher_eval"
    """file stem of the JSON and markdown results under benchmarks/results/"""


def env_id(task: str) -> str:
    return task if "/" in task or task.startswith(("MiniGrid", "BabyAI")) else f"{teacher_wrappers.NAMESPACE}/{task}-v0"


def evaluate(task: str, planner: str, episodes: int, seed: int = 0, greedy: bool = False,
             planner_kwargs: dict | None = None, progress: bool = True) -> dict:
    """Success rate, lava deaths, timeouts and mean return of a teacher acting alone."""
    env = TeacherWrapper(gym.make(env_id(task)), planner=planner, planner_kwargs=planner_kwargs)
    rng = np.random.default_rng(seed)
    outcomes = {"success": 0, "lava": 0, "timeout": 0, "other": 0}
    returns, lengths = [], []
    start = time.perf_counter()
    for episode in tqdm(range(episodes), desc=f"{planner:>9} {task}", leave=False, disable=not progress):
        obs, info = env.reset(seed=seed + episode)
        total, steps, terminated, truncated = 0.0, 0, False, False
        while not (terminated or truncated):
            probs = obs["teacher_probs"].astype(np.float64)
            probs /= probs.sum()  # float32 rounding
            action = int(np.argmax(probs)) if greedy else int(rng.choice(len(probs), p=probs))
            obs, reward, terminated, truncated, info = env.step(action)
            total, steps = total + float(reward), steps + 1
        base = env.unwrapped
        on_lava = (cell := base.grid.get(*base.agent_pos)) is not None and cell.type == "lava"
        outcome = "success" if info.get("success", total > 0) else "lava" if on_lava else \
            "timeout" if truncated else "other"
        outcomes[outcome] += 1
        returns.append(total)
        lengths.append(steps)
    stats = env.teacher_stats()
    env.close()
    return {"task": task, "planner": planner, "episodes": episodes, "greedy": greedy,
            "success_rate": outcomes["success"] / episodes, "lava_deaths": outcomes["lava"],
            "timeouts": outcomes["timeout"], "other_failures": outcomes["other"],
            "mean_return": float(np.mean(returns)), "mean_length": float(np.mean(lengths)),
            "seconds": time.perf_counter() - start, "teacher_stats": stats}


def markdown(rows: list[dict]) -> str:
    lines = ["| task | planner | success | lava deaths | timeouts | mean return | mean length | LLM queries |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['planner']} | {r['success_rate']:.3f} | {r['lava_deaths']} | "
                     f"{r['timeouts']} | {r['mean_return']:.3f} | {r['mean_length']:.1f} | "
                     f"{r['teacher_stats']['queries']} |")
    return "\n".join(lines) + "\n"


def main(args: Args) -> list[dict]:
    rows = [evaluate(task, planner, args.episodes, args.seed, args.greedy)
            for planner in args.planners for task in args.tasks]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"args": vars(args), "results": rows}, indent=1) + "\n")
    header = (f"# Teacher alone, {args.episodes} episodes per task, actions "
              f"{'argmax' if args.greedy else 'sampled'} from teacher_probs\n\n")
    (RESULTS / f"{args.out}.md").write_text(header + markdown(rows))
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(tyro.cli(Args))
