"""The sweep harness: methods x tasks x seeds, each run in its own process.

    python -m benchmarks.run --tasks SimpleDoorKey LavaDoorKey ColoredDoorKey --seeds 1 2 3 4 5 \\
        --methods ppo ppo_teacher:recorded ppo_teacher:rules teacher:recorded teacher:rules

A method is `ppo`, `ppo_teacher:<planner>` or `teacher:<planner>` (the teacher acting alone). Every
run writes <out>/<task>__<method>__<seed>/summary.json; runs whose summary exists are skipped, so a
killed sweep continues where it stopped and loses at most the runs in flight.
`python -m benchmarks.report` turns the runs into the report.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Literal
from pathlib import Path

import tyro

from benchmarks.teacher_eval import env_id, evaluate

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    methods: list[str] = field(default_factory=lambda: ["ppo", "ppo_teacher:recorded", "ppo_teacher:rules",
                                                        "teacher:recorded", "teacher:rules"])
    """ppo, ppo_teacher:<planner> or teacher:<planner>"""
    tasks: list[str] = field(default_factory=lambda: ["SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey"])
    """task names (TeacherWrappers/<task>-v0) or gymnasium ids"""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """training seeds"""
    total_timesteps: int = 300_000
    """frame budget of every training run"""
    teacher_episodes: int = 500
    """episodes for the teacher-alone method"""
    workers: int = 2
    """runs at the same time (each uses one core)"""
    out: str = "benchmarks/runs"
    """folder of the runs"""
    backend: Literal["local", "ray"] = "local"
    """local: parallel processes on this machine; ray: tasks on a Ray cluster (pip install ray)"""
    ray_address: str | None = None
    """ray backend: the cluster to join ('auto', 'ray://host:10001'); default: the running or a new local Ray.
    On a cluster, every node needs the repository at the same path and --out on shared storage."""
    extra: str = ""
    """extra arguments for every training script, as one string, e.g. --extra='--schedule reference'"""


@dataclass(frozen=True)
class Run:
    task: str
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}__{self.method.replace(':', '-')}__{self.seed}"


def command(run: Run, args: Args) -> list[str]:
    script, _, planner = run.method.partition(":")
    cmd = [sys.executable, str(ROOT / "algorithms" / f"{script}.py"), "--env-id", env_id(run.task),
           "--seed", str(run.seed), "--total-timesteps", str(args.total_timesteps), "--run-dir", args.out,
           "--run-name", run.name, "--no-progress", "--checkpoint-every", "0"]
    if planner:
        cmd += ["--planner", planner]
    return cmd + shlex.split(args.extra)


def execute(run: Run, args: Args) -> str:
    path = Path(args.out) / run.name
    if run.method.startswith("teacher:"):
        planner = run.method.partition(":")[2]
        start = time.perf_counter()
        result = evaluate(run.task, planner, args.teacher_episodes, seed=run.seed * 100_000, progress=False)
        summary = {"env_id": env_id(run.task), "method": "teacher", "planner": planner, "seed": run.seed,
                   "frames": 0, "wall_seconds": time.perf_counter() - start,
                   "eval_success_rate": result["success_rate"], "eval_mean_return": result["mean_return"],
                   "eval_episodes": args.teacher_episodes, "teacher_eval": result}
        path.mkdir(parents=True, exist_ok=True)
        (path / "summary.json").write_text(json.dumps(summary, indent=1))
        return f"{run.name}: success {result['success_rate']:.2f}"
    log = Path(args.out) / f"{run.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        # the scripts import this checkout's package, not whichever one the virtual environment installed
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(command(run, args), stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path})
    if proc.returncode != 0:
        return f"{run.name}: FAILED (exit {proc.returncode}), see {log}"
    summary = json.loads((path / "summary.json").read_text())
    return f"{run.name}: eval success {summary['eval_success_rate']:.2f}, frames to 90% {summary['frames_to_90']}"


def main(args: Args) -> None:
    # Seed-major order: a sweep stopped half-way still covers every task and method.
    runs = [Run(task, method, seed) for seed in args.seeds for task in args.tasks for method in args.methods]
    todo = [run for run in runs if not (Path(args.out) / run.name / "summary.json").exists()]
    print(f"{len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to go, "
          f"{'on Ray' if args.backend == 'ray' else f'{args.workers} at a time'}")
    results = run_on_ray(todo, args) if args.backend == "ray" else run_locally(todo, args)
    for done, result in enumerate(results, 1):
        print(f"[{done}/{len(todo)}] {result}", flush=True)


def run_locally(todo: list[Run], args: Args):
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(execute, run, args) for run in todo]
        for future in as_completed(futures):
            yield future.result()


def run_on_ray(todo: list[Run], args: Args):
    """The same runs as Ray tasks, one CPU each; results are reported as they finish."""
    import ray

    if not ray.is_initialized():
        ray.init(address=args.ray_address, log_to_driver=False)
    remote_execute = ray.remote(num_cpus=1)(execute)
    pending = [remote_execute.remote(run, args) for run in todo]
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        yield ray.get(finished[0])


if __name__ == "__main__":
    main(tyro.cli(Args))
