"""The sweep's command line: methods x tasks x seeds, each run in its own process.

    python -m benchmarks.run --tasks SimpleDoorKey LavaDoorKey ColoredDoorKey --seeds 1 2 3 4 5 \\
        --methods ppo ppo_teacher:recorded ppo_teacher:rules teacher:recorded teacher:rules

A method is `ppo`, `ppo_rnd` (PPO + Random Network Distillation), `ppo_teacher:<planner>` (ours),
`llm4teach:<planner>` (the paper's loss and schedule: `ppo_teacher.py` with LLM4TEACH_FLAGS),
`ppo_jsrl:<planner>` (Jump-Start RL with the teacher as its guide) or `teacher:<planner>` (the teacher
acting alone); docs/baselines.md says how each is set up. Every run writes
<out>/<task>__<method>__<seed>/summary.json. `python -m benchmarks.report` turns the runs into the report.

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
import shutil
import signal
import sys
import threading
from pathlib import Path

from benchmarks.sweep import ray_backend  # imports Ray only where the backend is used
from benchmarks.sweep.job import Args, Run, State, SweepError, assess, validate
from benchmarks.sweep.local import Sweep, run_locally

__all__ = ["Args", "main"]


def main(args: Args) -> int:
    """Runs the sweep; returns the exit status (see the module docstring)."""
    # Seed-major order: a sweep stopped half-way still covers every task and method.
    runs = [Run(task, method, seed) for seed in args.seeds for task in args.tasks for method in args.methods]
    sweep = Sweep(Path(args.out))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(sweep.release)
        try:
            validate(args, runs)
            sweep.acquire()
            states = [assess(run, args) for run in runs]
            mismatched = [state for state in states if state.status == "mismatch"]
            if mismatched and not args.redo_mismatched:
                shown = "; ".join(state.why for state in mismatched[:3])
                more = f" (and {len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
                raise SweepError(f"{len(mismatched)} runs in {args.out} were made with another configuration: "
                                 f"{shown}{more}; use another --out, or --redo-mismatched to delete and redo them")
            if args.backend == "ray" and not args.dry_run and any(state.status != "done" for state in states):
                # connected here, before _sweep sets its signal handlers: ray.init sets one for SIGTERM
                print(ray_backend.connect(args, sweep.token), flush=True)
                cleanup.callback(ray_backend.disconnect)
        except SweepError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if args.dry_run:
            for state in states:
                print(f"{state.run.name}: {state.status}{f' ({state.why})' if state.why else ''}")
            return 0
        return _sweep(args, states, sweep)


def _sweep(args: Args, states: list[State], sweep: Sweep) -> int:
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
        handlers = {signum: signal.signal(signum, sweep.on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    counts = {"ok": 0, "failed": 0, "interrupted": 0, "not started": 0}
    try:
        if args.backend == "ray":
            results = ray_backend.run_all(todo, args, sweep)
        else:
            results = run_locally(todo, args, sweep)
        for done, (status, line) in enumerate(results, 1):
            counts[status] += 1
            if status != "not started":
                print(f"[{done}/{len(todo)}] {line}", flush=True)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if sweep.signal is not None:
        print(f"stopped: {counts['ok']} runs finished, {counts['interrupted']} interrupted (checkpoints kept), "
              f"{counts['not started']} not started; run the same command again to continue", file=sys.stderr)
        return 128 + sweep.signal
    if counts["failed"]:
        print(f"{counts['failed']} of {len(todo)} runs FAILED (logs in {args.out})", file=sys.stderr)
        return 1
    return 0
