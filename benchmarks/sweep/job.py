"""A sweep's runs: what each one is, the command that makes it, the configuration it records, what is there.

Every run is a process of its own: a training script (`algorithms/<script>.py`) or, for the teacher acting alone,
`teacher_run` in a child Python. `assess` compares what a run's folder holds (its summary, else its checkpoint)
with what the sweep asks for; the backends (`local`, `ray_backend`) start the runs it did not find done.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import os
import re
import shlex
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from benchmarks.teacher_eval import env_id, evaluate
from teacher_wrappers.atomic import write_text

ROOT = Path(__file__).resolve().parents[2]  # the repository
SCRIPTS = ("ppo", "ppo_rnd", "ppo_teacher", "ppo_jsrl")  # algorithms/<script>.py
PLANNERLESS = ("ppo", "ppo_rnd")  # the scripts that take no teacher
# The paper's method (Zhou et al., 2023) as a configuration of ppo_teacher.py: the reference code's loss (distillation
# on every rollout state, no greedy rollout envs) and schedule with its published constants (lambda 10, falling by
# 0.005 per update to a floor of 0.1). Its teacher goes off after update 3000 of at least 256 frames, so after at
# least 768k frames: at our 512 frames per update that is update 1500 (docs/baselines.md). Its PPO settings are
# ppo.py's, the entropy bonus of 0.01 included (ppo_teacher.py's own default is 0).
LLM4TEACH_FLAGS = ("--exp-name", "llm4teach", "--schedule", "reference", "--distill-from", "on-policy", "--greedy-fraction", "0",
                   "--lambda-start", "10", "--lambda-decay", "0.005", "--lambda-floor", "0.1",
                   "--teacher-off-iteration", "1500", "--ent-coef", "0.01")
PRESETS = {"llm4teach": ("ppo_teacher", LLM4TEACH_FLAGS)}  # method name -> (script, its flags)


@dataclass
class Args:
    methods: list[str] = field(default_factory=lambda: ["ppo", "ppo_rnd", "ppo_jsrl:recorded", "llm4teach:recorded",
                                                        "ppo_teacher:recorded", "teacher:recorded"])
    """ppo, ppo_rnd, ppo_teacher:<planner>, llm4teach:<planner>, ppo_jsrl:<planner> or teacher:<planner>"""
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
    """ray backend: the cluster to join ('auto', 'host:6379', 'ray://host:10001'); default: the running or a new
    local Ray. The code is shipped to the workers; --out must be shared storage (docs/sweeps-on-ray.md)."""
    extra: str = ""
    """extra arguments for every training script, as one string, e.g. --extra='--schedule reference'"""
    redo_mismatched: bool = False
    """delete and redo the runs of --out whose summary or checkpoint records another configuration"""
    dry_run: bool = False
    """only say which runs are done, would continue from a checkpoint, start afresh or do not match"""


@dataclass(frozen=True)
class Run:
    task: str
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}__{self.method.replace(':', '-')}__{self.seed}"

    @property
    def script(self) -> str:
        """algorithms/<script>.py, or "teacher" for the teacher acting alone."""
        name = self.method.partition(":")[0]
        return PRESETS[name][0] if name in PRESETS else name

    @property
    def preset_flags(self) -> tuple[str, ...]:
        """The flags that make a named configuration of its script (llm4teach)."""
        name = self.method.partition(":")[0]
        return PRESETS[name][1] if name in PRESETS else ()

    @property
    def planner(self) -> str:
        return self.method.partition(":")[2]


class SweepError(Exception):
    """Bad arguments, a mismatching run or a held lock: the sweep stops before its first run."""


# -- what the sweep asks for ------------------------------------------------------------------------

@functools.cache
def script_module(script: str):
    """algorithms/<script>.py as a module (for its Args; the training itself runs as __main__ only)."""
    name = f"_sweep_{script}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "algorithms" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # tyro inspects the module of Args
    spec.loader.exec_module(module)
    return module


def command(run: Run, args: Args) -> list[str]:
    if run.script == "teacher":
        out = os.path.abspath(args.out)  # the children run in the repository root
        call = f"teacher_run({run.task!r}, {run.planner!r}, {args.teacher_episodes}, {run.seed}, {out!r})"
        return [sys.executable, "-c", f"from benchmarks.sweep.job import teacher_run; {call}"]
    return [sys.executable, str(ROOT / "algorithms" / f"{run.script}.py"), *script_flags(run, args)]


def script_flags(run: Run, args: Args) -> list[str]:
    flags = ["--env-id", env_id(run.task), "--seed", str(run.seed), "--total-timesteps", str(args.total_timesteps),
             "--run-dir", os.path.abspath(args.out), "--run-name", run.name, "--no-progress", "--checkpoint-every", "0"]
    if run.planner:
        flags += ["--planner", run.planner]
    return flags + list(run.preset_flags) + shlex.split(args.extra)


def not_configuration() -> frozenset[str]:
    """A training script's settings that do not change what a run measures: a summary or checkpoint that differs
    from the sweep's asking only in these is of the run asked for.

    They are the settings a resumed run may change (`teacher_wrappers.training.RESUME_FREE`, the one list), less the
    evaluation's (`eval_*`): those do not change the training, so a run may continue with others, but they change
    the final evaluation and so the summary's figures, so a run made with others is not the one asked for."""
    # imported here: it imports torch, which only a training script's settings need
    from teacher_wrappers.training import RESUME_FREE

    return frozenset(name for name in RESUME_FREE if not name.startswith("eval_"))


def expected_configuration(run: Run, args: Args) -> dict:
    """The settings a finished run of this sweep records in its summary (as JSON would give them back)."""
    if run.script == "teacher":  # the fields every teacher-alone summary has
        return {"env_id": env_id(run.task), "planner": run.planner, "seed": run.seed,
                "eval_episodes": args.teacher_episodes}
    module = script_module(run.script)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parsed = tyro.cli(module.Args, args=script_flags(run, args))
    except SystemExit:
        message = " ".join(re.sub(r"[╭╮╰╯│─]", " ", stderr.getvalue()).split())
        raise SweepError(f"--extra {args.extra!r} is not valid for algorithms/{run.script}.py: "
                         f"{message.split(' For full helptext')[0]}") from None
    settings = json.loads(json.dumps(asdict(parsed)))
    free = not_configuration()
    return {key: value for key, value in settings.items() if key not in free}


def validate(args: Args, runs: list[Run]) -> None:
    """Every method, task and --extra checked before the first run starts."""
    from teacher_wrappers.planners import PLANNERS

    problems = []
    for method in args.methods:
        script, colon, planner = method.partition(":")
        if script not in (*SCRIPTS, *PRESETS, "teacher"):
            problems.append(f"unknown method {method!r}: use ppo, ppo_rnd, ppo_teacher:<planner>, llm4teach:<planner>, "
                            "ppo_jsrl:<planner> or teacher:<planner>")
        elif script in PLANNERLESS and colon:
            problems.append(f"method {method!r}: {script} takes no planner")
        elif script not in PLANNERLESS and planner not in PLANNERS:
            problems.append(f"method {method!r}: unknown planner {planner!r}; valid planners: {', '.join(PLANNERS)}")
    for task in args.tasks:
        problem = task_problem(task)
        if problem:
            problems.append(problem)
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        problems.append("--backend ray needs Ray: pip install 'teacher-wrappers[ray]' (or pip install ray)")
    if args.total_timesteps < 1 or args.teacher_episodes < 1 or args.workers < 1:
        problems.append("--total-timesteps, --teacher-episodes and --workers must be at least 1")
    try:
        shlex.split(args.extra)
    except ValueError as error:
        problems.append(f"--extra {args.extra!r}: {error}")
    if problems:
        raise SweepError("; ".join(problems))
    for script in {run.script for run in runs} - {"teacher"}:
        if not (ROOT / "algorithms" / f"{script}.py").exists():
            raise SweepError(f"algorithms/{script}.py is missing from this checkout")
    for method in {run.method for run in runs if run.script != "teacher"}:  # --extra, against each one's arguments
        expected_configuration(next(run for run in runs if run.method == method), args)


def task_problem(task: str) -> str | None:
    import gymnasium as gym
    from minigrid.minigrid_env import MiniGridEnv

    import teacher_wrappers

    try:
        env = gym.make(env_id(task))
    except (gym.error.Error, ImportError, TypeError, ValueError):
        return (f"unknown task {task!r}; valid: {', '.join(teacher_wrappers.TASKS)}, or a MiniGrid id "
                "(e.g. MiniGrid-DoorKey-8x8-v0)")
    base = env.unwrapped
    env.close()
    return None if isinstance(base, MiniGridEnv) else f"task {task!r} is not a MiniGrid environment"


# -- what is already there --------------------------------------------------------------------------

@dataclass
class State:
    run: Run
    status: Literal["done", "resume", "fresh", "mismatch"]
    why: str = ""


def assess(run: Run, args: Args) -> State:
    """done: a summary of this configuration; resume: a checkpoint of it; fresh: nothing usable (an unreadable
    summary or checkpoint is redone); mismatch: a summary or checkpoint of another configuration."""
    folder = Path(args.out) / run.name
    expected = expected_configuration(run, args)
    summary_path = folder / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            summary = None  # written half (killed mid-write by older code): not done
        if isinstance(summary, dict):
            recorded = summary if run.script == "teacher" else summary.get("args")
            differences = _differences(recorded if isinstance(recorded, dict) else {}, expected)
            method = "teacher" if run.script == "teacher" else run.script
            if summary.get("method") != method:
                differences.insert(0, f"method {summary.get('method')!r} (asked: {method!r})")
            if not differences:
                return State(run, "done")
            return State(run, "mismatch", f"{summary_path}: {'; '.join(differences)}")
    checkpoint_path = folder / "checkpoints" / "latest.pt"
    if run.script != "teacher" and checkpoint_path.exists():
        import torch

        try:
            checkpoint = torch.load(checkpoint_path, weights_only=False, map_location="cpu")
            recorded, script = checkpoint["args"], checkpoint.get("script")
        except Exception:  # noqa: BLE001  (unreadable: nothing to continue from)
            return State(run, "fresh", f"unreadable checkpoint {checkpoint_path}")
        differences = _differences(json.loads(json.dumps(recorded)), expected)
        if script != f"{run.script}.py":
            differences.insert(0, f"script {script!r} (asked: '{run.script}.py')")
        if differences:
            return State(run, "mismatch", f"{checkpoint_path}: {'; '.join(differences)}")
        return State(run, "resume")
    return State(run, "fresh")


def _differences(recorded: dict, expected: dict) -> list[str]:
    """Settings recorded otherwise than asked. A setting the record lacks matches only when it is asked off
    (None or False): an option added to a script after the run was made, that the run did not use."""
    return [f"{key} {recorded.get(key, '(not recorded)')!r} (asked: {value!r})"
            for key, value in expected.items()
            if (recorded[key] != value if key in recorded else value not in (None, False))]


# -- the teacher acting alone ---------------------------------------------------------------------

def teacher_run(task: str, planner: str, episodes: int, seed: int, out: str) -> None:
    """The teacher-alone method, run in a child process like the training runs (so that it can be stopped)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl-C would: nothing to keep
    name = Run(task, f"teacher:{planner}", seed).name
    start = time.perf_counter()
    result = evaluate(task, planner, episodes, seed=seed * 100_000, progress=False)
    summary = {"env_id": env_id(task), "method": "teacher", "planner": planner, "seed": seed,
               "frames": 0, "wall_seconds": time.perf_counter() - start,
               "eval_success_rate": result["success_rate"], "eval_mean_return": result["mean_return"],
               "eval_episodes": episodes, "teacher_eval": result,
               "args": {"task": task, "planner": planner, "seed": seed, "episodes": episodes}}
    write_text(Path(out) / name / "summary.json", json.dumps(summary, indent=1))


