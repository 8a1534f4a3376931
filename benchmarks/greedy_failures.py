"""What a trained student's greedy failures do: the evaluation seeds it fails, each classified.

    python -m benchmarks.greedy_failures --runs benchmarks/runs/sweep --tasks ColoredDoorKey LavaDoorKey

For each run (summary.json + checkpoints/latest.pt) it plays the deployed student (greedy) on the run's evaluation
seeds, one episode at a time, and sorts every failure: `lava` (stepped into lava), `loop` (its observation came
again: on these static tasks the same observation is the same state, so a greedy feed-forward student never leaves
it), or `timeout`. A loop is described by what the agent holds, what is in front of it and the actions of the
loop. Writes <out>/greedy_failures.md.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro
from minigrid.core.actions import Actions

from benchmarks.render_gifs import load_student
from teacher_wrappers.atomic import write_text
from teacher_wrappers.student import student_env


@dataclass
class Args:
    runs: list[str] = field(default_factory=lambda: ["benchmarks/runs"])
    """folders searched for runs with a summary.json and checkpoints/latest.pt"""
    tasks: list[str] = field(default_factory=lambda: ["ColoredDoorKey", "LavaDoorKey"])
    """tasks whose runs are looked at"""
    method: str = "ppo_teacher"
    """the runs' method (summary.json's "method")"""
    out: str = "benchmarks/results"
    """folder for greedy_failures.md"""


def describe_object(obj) -> str:
    return "nothing" if obj is None else f"{obj.color} {obj.type}" + (
        (" (locked)" if obj.is_locked else " (open)" if obj.is_open else "") if obj.type == "door" else "")


def play(agent, env, seed: int) -> tuple[str, str]:
    """(kind, detail) of one greedy episode: kind is success, lava, loop or timeout."""
    obs, _ = env.reset(seed=seed)
    seen: dict[bytes, int] = {}
    actions: list[int] = []
    base = env.unwrapped
    while True:
        key = obs["image"].tobytes()
        if key in seen:  # the same state again: a greedy policy of the observation repeats the loop forever
            loop = ", ".join(Actions(a).name for a in actions[seen[key]:])
            front = base.grid.get(*base.front_pos)
            return "loop", f"holds {describe_object(base.carrying)}; faces {describe_object(front)}; loop: {loop}"
        seen[key] = len(actions)
        action = int(agent.act({name: value[None] for name, value in obs.items()}, greedy=True)[0])
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        if reward > 0:
            return "success", ""
        if terminated:
            return "lava", f"after {len(actions)} steps, holding {describe_object(base.carrying)}"
        if truncated:
            return "timeout", f"holds {describe_object(base.carrying)}"


def main(args: Args) -> str:
    lines = ["# Greedy failures of trained students", "",
             "Each run's deployed student (greedy) on its evaluation seeds; every failure sorted: `loop` (its "
             "observation came again, so it never leaves), `lava`, `timeout`. Made by `python -m "
             f"benchmarks.greedy_failures --tasks {' '.join(args.tasks)}` over the runs named below.", ""]
    for path in sorted(p for folder in args.runs for p in Path(folder).rglob("summary.json")):
        summary = json.loads(path.read_text())
        task = summary["env_id"].split("/")[-1].removesuffix("-v0")
        if summary["method"] != args.method or task not in args.tasks:
            continue
        if not (path.parent / "checkpoints/latest.pt").exists() or summary["args"].get("student") == "lstm":
            continue  # (a recurrent student's loops are not visible in its observation)
        agent, settings = load_student(path.parent)
        env = student_env(settings["env_id"], settings.get("visits", False))
        seeds = settings["eval_seed"] + np.arange(settings["eval_episodes"])
        with torch.no_grad():
            results = [play(agent, env, int(seed)) for seed in seeds]
        kinds = Counter(kind for kind, _ in results)
        details = Counter(detail for kind, detail in results if kind != "success")
        lines += [f"## {task}, {path.parent.name}", "",
                  f"greedy success {kinds['success'] / len(seeds):.2f} (summary: {summary['eval_success_rate']:.2f}); "
                  f"failures: " + ", ".join(f"{kind} {count}" for kind, count in kinds.items() if kind != "success"), ""]
        lines += [f"- {count} x {detail}" for detail, count in details.most_common(8)] + [""]
    text = "\n".join(lines)
    write_text(Path(args.out) / "greedy_failures.md", text)
    return text


if __name__ == "__main__":
    print(main(tyro.cli(Args)))
