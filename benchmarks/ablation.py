"""Ablation of the student's pieces: which of them lets a student surpass an imperfect teacher.

    python -m benchmarks.ablation run --runs benchmarks/runs/ablation --workers 2
    python -m benchmarks.ablation report --runs benchmarks/runs/ablation

Every configuration sets all the pieces explicitly, so the table keeps its meaning when the defaults of
algorithms/ppo_teacher.py change. A run whose summary.json parses is not run again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from benchmarks.report import iqm, median_or_none

ROOT = Path(__file__).resolve().parents[1]
def pieces(schedule="adaptive", visits=False, distill_from="on-policy", q_filter=False, greedy_envs=0) -> list[str]:
    # greedy_envs: out of the default 16 environments
    """Every piece set explicitly, so that a configuration keeps its meaning when the script's defaults change."""
    return ["--schedule", schedule, "--visits" if visits else "--no-visits", "--distill-from", distill_from,
            "--q-filter" if q_filter else "--no-q-filter", "--greedy-fraction", str(greedy_envs / 16)]


CONFIGS = {  # name: (label, arguments)
    "reference": ("reference schedule", pieces(schedule="reference")),
    "adaptive": ("adaptive schedule (the previous default)", pieces()),
    "visits": ("+ visit counts", pieces(visits=True)),
    "successes": ("+ success buffer", pieces(distill_from="successes")),
    "qfilter": ("+ Q-filter", pieces(q_filter=True)),
    "visits-successes": ("+ visit counts + success buffer", pieces(visits=True, distill_from="successes")),
    "all": ("+ visit counts + success buffer + Q-filter", pieces(visits=True, distill_from="successes", q_filter=True)),
    "demos": ("+ successful demos (actions taken)", pieces(distill_from="demos")),
    "visits-demos": ("+ visit counts + successful demos", pieces(visits=True, distill_from="demos")),
    "greedy": ("+ 2 of 16 envs acting greedily", pieces(greedy_envs=2)),
    "visits-greedy": ("+ visit counts + 2 greedy envs", pieces(visits=True, greedy_envs=2)),
    "successes-greedy": ("+ success buffer + 2 greedy envs", pieces(distill_from="successes", greedy_envs=2)),
    "greedy4": ("+ 4 of 16 envs acting greedily", pieces(greedy_envs=4)),
    "successes-greedy4": ("+ success buffer + 4 greedy envs", pieces(distill_from="successes", greedy_envs=4)),
    "all-greedy": ("+ all three + 2 greedy envs", pieces(visits=True, distill_from="successes", q_filter=True,
                                                         greedy_envs=2)),
}
BUDGETS = {"ColoredDoorKey": 150_000, "SimpleDoorKey": 60_000}


@dataclass
class Args:
    action: tyro.conf.Positional[Literal["run", "report"]]
    """run the ablation, or write its report"""
    configs: list[str] = field(default_factory=lambda: list(CONFIGS))
    """configurations to run (names from CONFIGS)"""
    tasks: list[str] = field(default_factory=lambda: list(BUDGETS))
    """tasks, each with its frame budget from BUDGETS"""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """training seeds"""
    planner: str = "recorded"
    """the teacher's planner"""
    workers: int = 2
    """runs at the same time (each uses one core)"""
    budget_scale: float = 1.0
    """multiplies every task's frame budget (a quick check: 0.02)"""
    runs: str = "benchmarks/runs/ablation"
    """folder of the runs"""
    out: str = "benchmarks/results"
    """folder for ABLATION.md and ablation.json"""


def run_name(task: str, config: str, seed: int) -> str:
    return f"{task}__{config}__{seed}"


def finished(path: Path) -> bool:
    try:
        json.loads((path / "summary.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def run_one(args: Args, task: str, config: str, seed: int) -> str:
    name = run_name(task, config, seed)
    if finished(Path(args.runs) / name):
        return f"{name}: done before"
    command = [sys.executable, str(ROOT / "algorithms" / "ppo_teacher.py"), "--env-id", f"TeacherWrappers/{task}-v0",
               "--planner", args.planner, "--seed", str(seed), "--total-timesteps", str(int(BUDGETS[task] * args.budget_scale)),
               "--run-dir", args.runs, "--run-name", name, "--no-progress", "--checkpoint-every", "0",
               *CONFIGS[config][1]]
    proc = subprocess.run(command, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
    return f"{name}: {'ok' if proc.returncode == 0 else f'FAILED ({proc.returncode})'} {tail[0]}"


def run(args: Args) -> None:
    unknown = sorted(set(args.configs) - set(CONFIGS)) + sorted(set(args.tasks) - set(BUDGETS))
    if unknown:
        raise SystemExit(f"unknown configurations or tasks: {', '.join(unknown)}")
    # Seed-major, so that an ablation cut short loses the last seed of every configuration rather than a whole
    # configuration; within a seed the longest runs first, so that the short ones fill the gaps.
    jobs = sorted(((task, config, seed) for task in args.tasks for config in args.configs for seed in args.seeds),
                  key=lambda job: (job[2], -BUDGETS[job[0]]))
    with ThreadPoolExecutor(args.workers) as pool:
        for line in pool.map(lambda job: run_one(args, *job), jobs):
            print(line, flush=True)


def row(task: str, config: str, summaries: list[dict]) -> dict:
    greedy = [s["eval_success_rate"] for s in summaries]
    ratio = [s["eval_mean_return"] / s["teacher_eval_mean_return"] for s in summaries if s["teacher_eval_mean_return"]]
    return {
        "task": task, "config": config, "label": CONFIGS[config][0], "seeds": len(summaries),
        "greedy_success_iqm": iqm(greedy), "greedy_success_mean": float(np.mean(greedy)),
        "greedy_success_per_seed": greedy,
        "sampled_success_mean": float(np.mean([s["eval_sampled_success_rate"] for s in summaries])),
        "return_over_teacher_mean": float(np.mean(ratio)) if ratio else None,
        "teacher_success_mean": float(np.mean([s["teacher_eval_success_rate"] for s in summaries])),
        "frames_to_90_median": median_or_none([s["frames_to_90"] for s in summaries]),
        "frames_to_90": [s["frames_to_90"] for s in summaries],
        "frames": summaries[0]["frames"], "sps_median": float(np.median([s["sps"] for s in summaries])),
    }


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(args: Args) -> list[dict]:
    rows = []
    for task in args.tasks:
        for config in args.configs:
            summaries = [json.loads((Path(args.runs) / run_name(task, config, seed) / "summary.json").read_text())
                         for seed in args.seeds if finished(Path(args.runs) / run_name(task, config, seed))]
            if summaries:
                rows.append(row(task, config, summaries))
    lines = ["# Ablation: what lets the student surpass its teacher", "",
             f"ppo_teacher.py with the {args.planner} teacher; every other argument at its default. Greedy and sampled: "
             "final evaluation success on 100 fixed seeds (greedy IQM over seeds, then the mean and each seed); "
             "student / teacher: the student's mean greedy return over the teacher-alone mean return on the same "
             "seeds (above 1: the student surpassed its teacher); frames to 90%: median over seeds of the first "
             "point where the last 100 training episodes reached 0.9 ('-' if any seed never did).", "",
             "| task | configuration | seeds | frames | greedy IQM | greedy mean (per seed) | sampled | student / teacher "
             "| teacher alone | frames to 90% | SPS |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        per_seed = " ".join(f"{value:.2f}" for value in r["greedy_success_per_seed"])
        lines.append(f"| {r['task']} | {r['label']} | {r['seeds']} | {r['frames']:,} | {r['greedy_success_iqm']:.2f} | "
                     f"{r['greedy_success_mean']:.2f} ({per_seed}) | {r['sampled_success_mean']:.2f} | "
                     f"{_fmt(r['return_over_teacher_mean'], '.2f')} | {r['teacher_success_mean']:.2f} | "
                     f"{_fmt(r['frames_to_90_median'], ',.0f')} | {r['sps_median']:,.0f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ABLATION.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    parsed = tyro.cli(Args)
    run(parsed) if parsed.action == "run" else report(parsed)
