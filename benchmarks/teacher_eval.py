"""Runs a teacher alone (actions sampled from teacher_probs) and reports its success per task.

    python -m benchmarks.teacher_eval --planners recorded rules --episodes 500
    python -m benchmarks.teacher_eval --suite --episodes 100

Writes benchmarks/results/teacher_eval.json and teacher_eval.md; with --suite, the wider MiniGrid and
BabyAI suite (the rules teacher against a random policy on SUITE_ENVS, and the recorded LLM teacher
on plain DoorKey-8x8 with and without the rules as fallback) to suite_teacher_eval.json and .md.
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
from teacher_wrappers.atomic import write_text

RESULTS = Path(__file__).parent / "results"
RANDOM = "random"  # not a teacher: uniformly random actions, the floor every teacher must beat

# Standard MiniGrid and BabyAI envs the suite teacher is held to: single- and multi-room missions of every
# type (reach the goal, go to, pick up, open, put next to, sequences, locations), KeyCorridor in all its sizes,
# and the neighbours of what it solves: ObstructedMaze (a key hidden in a box, a ball blocking the door) and
# BabyAI's unlocking levels (distractors, a blocked door, a key behind another locked door).
SUITE_ENVS = (
    "MiniGrid-Empty-8x8-v0", "MiniGrid-FourRooms-v0", "MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-16x16-v0",
    "MiniGrid-Unlock-v0", "MiniGrid-UnlockPickup-v0", "MiniGrid-BlockedUnlockPickup-v0",
    "MiniGrid-KeyCorridorS3R1-v0", "MiniGrid-KeyCorridorS3R2-v0", "MiniGrid-KeyCorridorS3R3-v0",
    "MiniGrid-KeyCorridorS4R3-v0", "MiniGrid-KeyCorridorS5R3-v0", "MiniGrid-KeyCorridorS6R3-v0",
    "MiniGrid-MultiRoom-N2-S4-v0", "MiniGrid-MultiRoom-N4-S5-v0",
    "MiniGrid-LavaCrossingS9N1-v0", "MiniGrid-LavaGapS7-v0", "MiniGrid-GoToDoor-5x5-v0", "MiniGrid-Fetch-5x5-N2-v0",
    "MiniGrid-PutNear-6x6-N2-v0", "MiniGrid-RedBlueDoors-6x6-v0", "BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToObj-v0",
    "BabyAI-OpenDoor-v0", "BabyAI-UnlockLocal-v0", "BabyAI-KeyInBox-v0", "BabyAI-PickupLoc-v0",
    "MiniGrid-ObstructedMaze-1Dl-v0", "MiniGrid-ObstructedMaze-1Dlh-v0", "MiniGrid-ObstructedMaze-1Dlhb-v0",
    "MiniGrid-ObstructedMaze-2Dl-v0", "MiniGrid-ObstructedMaze-2Dlh-v0", "BabyAI-UnlockPickup-v0",
    "BabyAI-UnlockLocalDist-v0", "BabyAI-BlockedUnlockPickup-v0", "BabyAI-UnlockToUnlock-v0",
)
# The recorded LLM teacher on a plain MiniGrid env: its table lacks the texts after the door opens.
RECORDED_ENV = "MiniGrid-DoorKey-8x8-v0"


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
    out: str | None = None
    """file stem of the JSON and markdown results under benchmarks/results/ (default: teacher_eval, or
    suite_teacher_eval with --suite)"""
    suite: bool = False
    """evaluate the MiniGrid/BabyAI suite instead (SUITE_ENVS: rules vs random; DoorKey-8x8: recorded, with
    and without fallback to the rules); --planners and --tasks are ignored"""


def env_id(task: str) -> str:
    """A task name (SimpleDoorKey) as its id; ids (MiniGrid-..., BabyAI-..., any registered one) as they are."""
    if "/" in task or task.startswith(("MiniGrid", "BabyAI")) or task in gym.registry:
        return task
    return f"{teacher_wrappers.NAMESPACE}/{task}-v0"


def evaluate(task: str, planner: str, episodes: int, seed: int = 0, greedy: bool = False,
             planner_kwargs: dict | None = None, progress: bool = True) -> dict:
    """Success rate, lava deaths, timeouts and mean return of a teacher acting alone.

    `planner="random"` plays uniformly random actions instead (no teacher)."""
    if planner == RANDOM:
        env = gym.make(env_id(task))
    else:
        env = TeacherWrapper(gym.make(env_id(task)), planner=planner, planner_kwargs=planner_kwargs)
    uniform = np.full(int(env.action_space.n), 1.0 / int(env.action_space.n))
    rng = np.random.default_rng(seed)
    outcomes = {"success": 0, "lava": 0, "timeout": 0, "other": 0}
    returns, lengths = [], []
    start = time.perf_counter()
    for episode in tqdm(range(episodes), desc=f"{planner:>9} {task}", leave=False, disable=not progress):
        obs, info = env.reset(seed=seed + episode)
        total, steps, terminated, truncated = 0.0, 0, False, False
        while not (terminated or truncated):
            probs = uniform.copy() if planner == RANDOM else obs["teacher_probs"].astype(np.float64)
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
    stats = {} if planner == RANDOM else env.teacher_stats()
    env.close()
    return {"task": task, "planner": planner, "episodes": episodes, "greedy": greedy,
            "success_rate": outcomes["success"] / episodes, "lava_deaths": outcomes["lava"],
            "timeouts": outcomes["timeout"], "other_failures": outcomes["other"],
            "mean_return": float(np.mean(returns)), "mean_length": float(np.mean(lengths)),
            "seconds": time.perf_counter() - start, "planner_kwargs": planner_kwargs or {}, "teacher_stats": stats}


def markdown(rows: list[dict]) -> str:
    lines = ["| task | planner | success | lava deaths | timeouts | mean return | mean length | LLM queries |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['planner']} | {r['success_rate']:.3f} | {r['lava_deaths']} | "
                     f"{r['timeouts']} | {r['mean_return']:.3f} | {r['mean_length']:.1f} | "
                     f"{r['teacher_stats']['queries']} |")
    return "\n".join(lines) + "\n"


def suite_rows(args: Args) -> list[dict]:
    rows = []
    for task in SUITE_ENVS:
        for planner in ("rules", RANDOM):
            rows.append(evaluate(task, planner, args.episodes, args.seed, args.greedy))
    for kwargs in ({}, {"fallback": "rules"}):
        rows.append(evaluate(RECORDED_ENV, "recorded", args.episodes, args.seed, args.greedy, planner_kwargs=kwargs))
    return rows


def suite_markdown(rows: list[dict], args: Args) -> str:
    by = {(r["task"], r["planner"], bool(r["planner_kwargs"])): r for r in rows}
    solved = sum(by[(task, "rules", False)]["success_rate"] >= 0.95 for task in SUITE_ENVS)
    lines = [f"# The suite teacher alone, {args.episodes} seeded episodes per env (seeds {args.seed}.."
             f"{args.seed + args.episodes - 1}), actions {'argmax' if args.greedy else 'sampled'} from teacher_probs",
             "", f"Command: `python -m benchmarks.teacher_eval --suite --episodes {args.episodes}`", "",
             f"Rules teacher (suite text style, mission-aware): **{solved} of {len(SUITE_ENVS)} envs at >= 0.95 "
             "success**; the random policy plays uniformly random actions.", "",
             "| env | rules success | random success | rules mean return | random mean return | rules mean length "
             "| timeouts | lava deaths | texts planned | unparsed plan steps |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for task in SUITE_ENVS:
        r, q = by[(task, "rules", False)], by[(task, RANDOM, False)]
        lines.append(f"| {task} | {r['success_rate']:.3f} | {q['success_rate']:.3f} | {r['mean_return']:.3f} | "
                     f"{q['mean_return']:.3f} | {r['mean_length']:.1f} | {r['timeouts']} | {r['lava_deaths']} | "
                     f"{r['teacher_stats']['queries']} | {r['teacher_stats']['unparsed_steps']} |")
    lines += ["", f"The recorded LLM teacher (reference style texts) on {RECORDED_ENV}: its table lacks the texts "
              "after the door opens (`unknown_texts`, distinct texts; never cache hits).", "",
              "| planner | success | mean return | mean length | texts planned | unknown texts | steps | cache-hit steps |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for fallback in (False, True):
        r = by[(RECORDED_ENV, "recorded", fallback)]
        stats = r["teacher_stats"]
        name = "recorded, fallback='rules'" if fallback else "recorded (unknown texts: explore)"
        lines.append(f"| {name} | {r['success_rate']:.3f} | {r['mean_return']:.3f} | {r['mean_length']:.1f} | "
                     f"{stats['queries']} | {stats['unknown_texts']} | {stats['steps']} | {stats['cache_hits']} |")
    return "\n".join(lines) + "\n"


def main(args: Args) -> list[dict]:
    out = args.out or ("suite_teacher_eval" if args.suite else "teacher_eval")
    if args.suite:
        rows = suite_rows(args)
        text = suite_markdown(rows, args)
    else:
        rows = [evaluate(task, planner, args.episodes, args.seed, args.greedy)
                for planner in args.planners for task in args.tasks]
        text = (f"# Teacher alone, {args.episodes} episodes per task, actions "
                f"{'argmax' if args.greedy else 'sampled'} from teacher_probs\n\n") + markdown(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / f"{out}.json", json.dumps({"args": vars(args), "results": rows}, indent=1) + "\n")
    write_text(RESULTS / f"{out}.md", text)
    print(text)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(tyro.cli(Args))
