"""The sweep harness: methods x tasks x seeds, each run in its own process.

    python -m benchmarks.run --tasks SimpleDoorKey LavaDoorKey ColoredDoorKey --seeds 1 2 3 4 5 \\
        --methods ppo ppo_teacher:recorded ppo_teacher:rules teacher:recorded teacher:rules

A method is `ppo`, `ppo_rnd` (PPO + Random Network Distillation), `ppo_teacher:<planner>` (ours),
`llm4teach:<planner>` (the paper's loss and schedule: `ppo_teacher.py` with LLM4TEACH_FLAGS),
`ppo_jsrl:<planner>` (Jump-Start RL with the teacher as its guide) or `teacher:<planner>` (the teacher
acting alone); docs/baselines.md says how each is set up. Every run writes <out>/<task>__<method>__<seed>/summary.json. `python -m benchmarks.report` turns the runs
into the report.

Stopping and restarting (docs/benchmarks.md; on Ray: docs/sweeps-on-ray.md):
- Ctrl-C or SIGTERM stops the whole sweep: every run in flight gets SIGTERM (its whole process
  group: the training script and its workers), writes a checkpoint and exits; nothing new starts;
  the sweep exits 130 (Ctrl-C) or 143 (SIGTERM). Finished runs are left as they are.
- Run the same command again to continue. A run is done when its summary.json parses and records
  the configuration asked for (script, method, task, seed, frames, --extra); a run with a checkpoint
  of that configuration continues from it; any other run starts afresh in an emptied folder.
- A summary or checkpoint made with another configuration stops the sweep before its first run,
  naming the difference; use another --out, or --redo-mismatched to delete those runs and redo them.
- A lock (<out>/.sweep.lock) keeps a second sweep out of the folder while this one or any of its
  runs is alive.
- Exit status: 0 when every run succeeded, 1 when some failed, 2 for bad arguments, a mismatch or a
  held lock, 130/143 when stopped.
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
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from benchmarks.teacher_eval import env_id, evaluate
from teacher_wrappers.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("ppo", "ppo_rnd", "ppo_teacher", "ppo_jsrl")  # algorithms/<script>.py
PLANNERLESS = ("ppo", "ppo_rnd")  # the scripts that take no teacher
# The paper's method (Zhou et al., 2023) as a configuration of ppo_teacher.py: the reference code's loss (distillation
# on every rollout state, no greedy rollout envs) and schedule with its published constants (lambda 10, falling by
# 0.005 per update to a floor of 0.1). Its teacher goes off after update 3000 of at least 256 frames, so after at
# least 768k frames: at our 512 frames per update that is update 1500 (docs/baselines.md).
LLM4TEACH_FLAGS = ("--exp-name", "llm4teach", "--schedule", "reference", "--distill-from", "on-policy", "--greedy-fraction", "0",
                   "--lambda-start", "10", "--lambda-decay", "0.005", "--lambda-floor", "0.1",
                   "--teacher-off-iteration", "1500")
PRESETS = {"llm4teach": ("ppo_teacher", LLM4TEACH_FLAGS)}  # method name -> (script, its flags)
LOCK_NAME = ".sweep.lock"
GRACE_SECONDS = 60  # a run told to stop gets this long to write its checkpoint before it is killed
# Arguments that do not change what a run measures: a summary that differs only in these is still done.
NOT_CONFIGURATION = {"run_dir", "run_name", "progress", "checkpoint_every", "resume", "resume_allow_budget_change",
                     "track", "wandb_project_name", "wandb_entity", "batch_size", "minibatch_size", "num_iterations"}


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
    """algorithms/<script>.py as a module (its Args and RESUME_FREE; the training itself runs as __main__ only)."""
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
        return [sys.executable, "-c", f"from benchmarks.run import teacher_run; {call}"]
    return [sys.executable, str(ROOT / "algorithms" / f"{run.script}.py"), *script_flags(run, args)]


def script_flags(run: Run, args: Args) -> list[str]:
    flags = ["--env-id", env_id(run.task), "--seed", str(run.seed), "--total-timesteps", str(args.total_timesteps),
             "--run-dir", os.path.abspath(args.out), "--run-name", run.name, "--no-progress", "--checkpoint-every", "0"]
    if run.planner:
        flags += ["--planner", run.planner]
    return flags + list(run.preset_flags) + shlex.split(args.extra)


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
    return {key: value for key, value in settings.items() if key not in NOT_CONFIGURATION}


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


# -- the lock, the children and stopping ---------------------------------------------------------------

class Sweep:
    """Children in their own process groups, so that one signal reaches a run and all its workers.

    A Ray task has one of its own, stopped through `interrupt` (see benchmarks/ray_backend.py)."""

    def __init__(self, out: Path):
        self.out = out
        self.stop = threading.Event()
        self.stops = 0  # how often the sweep was told to stop: the first time runs get SIGTERM, then SIGKILL
        self.signal: int | None = None
        self.children: set[subprocess.Popen] = set()
        self.guard = threading.RLock()
        self.lock_fd: int | None = None
        self.token = uuid.uuid4().hex  # written into the lock: Ray nodes check that they see this very folder

    def acquire(self) -> None:
        """An flock on <out>/.sweep.lock, shared with every child: held while any of them lives."""
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock, say so
            print(f"warning: no file locking here; make sure no other sweep uses {self.out}", file=sys.stderr)
            return

        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (os.read(fd, 100).decode(errors="replace").split() or ["unknown"])[0]
            os.close(fd)
            raise SweepError(f"another sweep (pid {holder}) or one of its runs is still using {self.out} "
                             f"(lock {path}); wait for it or stop it, then run this again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{self.token}\n".encode())
        self.lock_fd = fd

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # the lock goes once the last child holding it has exited too
            self.lock_fd = None

    def start(self, cmd: list[str], log, env: dict) -> subprocess.Popen | None:
        with self.guard:  # a stop between the check and the start would miss this child
            if self.stop.is_set():
                return None
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                    start_new_session=True,
                                    pass_fds=() if self.lock_fd is None else (self.lock_fd,))
            self.children.add(proc)
            return proc

    def finished(self, proc: subprocess.Popen) -> None:
        with self.guard:
            self.children.discard(proc)

    def on_signal(self, signum, frame) -> None:
        self.signal = self.signal or signum
        if self.interrupt():
            print(f"\nstopping the sweep ({signal.Signals(signum).name}): runs in flight write a checkpoint; "
                  "run the same command again to continue", file=sys.stderr, flush=True)

    def interrupt(self) -> bool:
        """Nothing new starts; runs in flight get SIGTERM, SIGKILL GRACE_SECONDS later or when told again.
        True the first time."""
        first = not self.stop.is_set()
        self.stops += 1
        self.stop.set()
        self.kill(signal.SIGTERM if first else signal.SIGKILL)  # a second Ctrl-C does not wait
        if first:
            timer = threading.Timer(GRACE_SECONDS, self.kill, (signal.SIGKILL,))
            timer.daemon = True
            timer.start()
        return first

    def kill(self, signum: int) -> None:
        with self.guard:
            for proc in self.children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signum)


SWEEP: Sweep | None = None  # the sweep of this process


def execute(run: Run, args: Args, resume: bool, sweep: Sweep) -> tuple[str, str]:
    """(status, line): status is ok, failed, interrupted or not started."""
    folder = Path(args.out) / run.name
    cmd = command(run, args)
    if resume:
        cmd += ["--resume", str(folder / "checkpoints" / "latest.pt")]
    log_path = Path(args.out) / f"{run.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # the library of this checkout, also where another one is installed
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log_path.open("a" if resume else "w") as log:
        proc = sweep.start(cmd, log, env)
        if proc is None:
            return "not started", f"{run.name}: not started"
        try:
            code = proc.wait()
        finally:
            sweep.finished(proc)
    if code != 0:
        if sweep.stop.is_set() or code in (130, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL):
            return "interrupted", f"{run.name}: interrupted (exit {code}); see {log_path}"
        return "failed", f"{run.name}: FAILED (exit {code}), see {log_path}"
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as error:
        return "failed", f"{run.name}: FAILED (exit 0 but no readable summary: {error}), see {log_path}"
    if run.script == "teacher":
        return "ok", f"{run.name}: success {summary['eval_success_rate']:.2f}"
    return "ok", (f"{run.name}: eval success {summary['eval_success_rate']:.2f}, "
                  f"frames to 90% {summary['frames_to_90']}")


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


# -- the sweep ------------------------------------------------------------------------------------------

def main(args: Args) -> int:
    """Runs the sweep; returns the exit status (see the module docstring)."""
    global SWEEP
    # Seed-major order: a sweep stopped half-way still covers every task and method.
    runs = [Run(task, method, seed) for seed in args.seeds for task in args.tasks for method in args.methods]
    SWEEP = Sweep(Path(args.out))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(SWEEP.release)
        try:
            validate(args, runs)
            SWEEP.acquire()
            states = [assess(run, args) for run in runs]
            mismatched = [state for state in states if state.status == "mismatch"]
            if mismatched and not args.redo_mismatched:
                shown = "; ".join(state.why for state in mismatched[:3])
                more = f" (and {len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
                raise SweepError(f"{len(mismatched)} runs in {args.out} were made with another configuration: "
                                 f"{shown}{more}; use another --out, or --redo-mismatched to delete and redo them")
            if args.backend == "ray" and not args.dry_run and any(state.status != "done" for state in states):
                # connected here, before _sweep sets its signal handlers: ray.init sets one for SIGTERM
                from benchmarks import ray_backend

                print(ray_backend.connect(args, SWEEP.token), flush=True)
                cleanup.callback(ray_backend.disconnect)
        except SweepError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if args.dry_run:
            for state in states:
                print(f"{state.run.name}: {state.status}{f' ({state.why})' if state.why else ''}")
            return 0
        return _sweep(args, states)


def _sweep(args: Args, states: list[State]) -> int:
    todo = [state for state in states if state.status != "done"]
    for state in todo:
        if state.status in ("fresh", "mismatch"):  # nothing of it is usable: start in an empty folder
            shutil.rmtree(Path(args.out) / state.run.name, ignore_errors=True)
            if state.why:
                print(f"{state.run.name}: redone ({state.why})")
    resuming = sum(state.status == "resume" for state in todo)
    print(f"{len(states)} runs, {len(states) - len(todo)} already done, {len(todo)} to go"
          f"{f' ({resuming} continuing from a checkpoint)' if resuming else ''}, "
          f"{'on Ray' if args.backend == 'ray' else f'{args.workers} at a time'}", flush=True)
    handlers = {}
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        handlers = {signum: signal.signal(signum, SWEEP.on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    counts = {"ok": 0, "failed": 0, "interrupted": 0, "not started": 0}
    try:
        if args.backend == "ray":
            from benchmarks import ray_backend

            results = ray_backend.run_all(todo, args, SWEEP)
        else:
            results = run_locally(todo, args)
        for done, (status, line) in enumerate(results, 1):
            counts[status] += 1
            if status != "not started":
                print(f"[{done}/{len(todo)}] {line}", flush=True)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if SWEEP.signal is not None:
        print(f"stopped: {counts['ok']} runs finished, {counts['interrupted']} interrupted (checkpoints kept), "
              f"{counts['not started']} not started; run the same command again to continue", file=sys.stderr)
        return 128 + SWEEP.signal
    if counts["failed"]:
        print(f"{counts['failed']} of {len(todo)} runs FAILED (logs in {args.out})", file=sys.stderr)
        return 1
    return 0


def run_locally(todo: list[State], args: Args):
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(execute, state.run, args, state.status == "resume", SWEEP) for state in todo]
        for future in as_completed(futures):
            yield future.result()


if __name__ == "__main__":
    # The importable module, not this __main__ copy: one set of classes and globals, which Ray can ship by name.
    from benchmarks import run  # noqa: PLW0406

    sys.exit(run.main(tyro.cli(run.Args)))
