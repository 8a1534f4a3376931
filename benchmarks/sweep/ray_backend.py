"""The Ray backend: a sweep's runs as Ray tasks, `python -m benchmarks.run --backend ray [--ray-address ...]`.

- The code travels with the job: the driver starts Ray with this repository as the runtime environment's
  working directory, so every worker imports this checkout (and runs the training scripts from it). A node
  needs the Python environment only: the same Python, Ray and packages (docs/sweeps-on-ray.md).
- `--out` is the one thing the nodes share: every run writes its log, checkpoint and summary there. Before the
  first run, every node with a CPU checks that it sees the sweep's folder (the lock holds a token the driver
  wrote) and can write to it; each run checks again, for nodes that join later. A node that cannot gets one line.
- One task per run, one CPU each. A task runs its run as the local backend does (`local.execute`: a child process
  in its own process group) and waits for it in a thread; `ray.cancel` interrupts the task's main thread, which stops the
  run as a signal stops the local sweep: SIGTERM (the run writes its checkpoint), SIGKILL on a second cancel or
  after the grace period. Tasks not started yet are dropped by Ray.

Functions named `*_task` run on the workers: they take plain data (Ray imports this module there).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.sweep.job import ROOT, Args, Run, State, SweepError
from benchmarks.sweep.local import LOCK_NAME, Sweep, execute

# Not shipped to the workers (besides what .gitignore lists, which Ray leaves out too): results and runs.
EXCLUDES = [".git", ".venv", "__pycache__", "/runs/", "/videos/", "/benchmarks/runs/", "/benchmarks/results/", "*.pt"]
PROBE_SECONDS = 180  # for every node to start a worker and check --out (workers start slowly on a busy node)


# -- on the workers ------------------------------------------------------------------------------------

def out_problem(lock_path: str, token: str) -> str | None:
    """None when this node can write to --out and it is the sweep's own folder (its lock holds `token`)."""
    out = os.path.dirname(lock_path)
    shared = "--out must be a folder every Ray node can write, at the same path (shared storage)"
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
        with open(lock_path) as lock:
            seen = token in lock.read().split()
    except OSError as error:
        return f"cannot write to {out} ({error.strerror}): {shared}"
    return None if seen else f"{out} here is not the folder the sweep writes to: {shared}"


def node_name() -> str:
    import ray

    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


def probe_task(lock_path: str, token: str) -> str | None:
    problem = out_problem(lock_path, token)
    return problem and f"Ray node {node_name()}: {problem}"


def run_task(run: dict, args: dict, resume: bool, token: str) -> tuple[str, str]:
    """One run of the sweep on this worker: (status, line) as `local.execute` gives them."""
    the_run, the_args = Run(**run), Args(**args)
    problem = out_problem(str(Path(the_args.out) / LOCK_NAME), token)
    if problem:
        return "failed", f"{the_run.name}: FAILED on Ray node {node_name()}: {problem}"
    sweep = Sweep(Path(the_args.out))  # this task's: no lock, stopped by ray.cancel below
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(execute, the_run, the_args, resume, sweep)
        while True:
            try:
                return future.result(timeout=0.5)  # wakes up so that ray.cancel's interrupt is seen
            except concurrent.futures.TimeoutError:
                pass
            except KeyboardInterrupt:  # ray.cancel: the run writes its checkpoint; the result says interrupted
                sweep.interrupt()


# -- on the driver -------------------------------------------------------------------------------------

def connect(args: Args, token: str) -> str:
    """Joins (or starts) Ray with this repository as the workers' working directory and checks every node's
    access to --out; returns a line saying where the runs go. Raises SweepError."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out = Path(args.out).resolve()
    excludes = list(EXCLUDES)
    if out.is_relative_to(ROOT):  # runs kept inside the repository stay here
        excludes.append(f"/{out.relative_to(ROOT).as_posix()}/")
    where = args.ray_address or "a local Ray"
    try:
        # Ray's start-up messages (a new local instance, the code upload, token authentication) stay in its
        # logs: the sweep's progress lines are what the terminal shows. Workers' output is in <out>/<run>.log.
        context = ray.init(address=args.ray_address, runtime_env={"working_dir": str(ROOT), "excludes": excludes},
                           log_to_driver=False, logging_level=logging.ERROR)
    except Exception as error:  # noqa: BLE001  (connection refused, no cluster found, upload too large, ...)
        raise SweepError(f"cannot start the sweep on {where}: {_first_line(error)}") from None
    nodes = [node for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU", 0) >= 1]
    if not nodes:
        disconnect()
        raise SweepError(f"the Ray cluster at {where} has no node with a CPU to run on")
    probe = ray.remote(num_cpus=0, max_retries=0)(probe_task)
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
            .remote(str(out / LOCK_NAME), token) for node in nodes]
    try:
        problems = [problem for problem in ray.get(refs, timeout=PROBE_SECONDS) if problem]
    except Exception as error:  # noqa: BLE001  (a node whose workers cannot start or import the code)
        problems = [f"checking --out on every Ray node failed: {_first_line(error)}"]
    if problems:
        disconnect()
        raise SweepError("; ".join(problems))
    cpus = sum(node["Resources"]["CPU"] for node in nodes)
    session = (getattr(context, "address_info", None) or {}).get("session_dir")  # none through ray:// clients
    logs = f"{session}/logs" if session else "the head node's /tmp/ray/session_latest/logs"
    return (f"Ray: {len(nodes)} nodes, {cpus:g} CPUs for runs, this checkout shipped to them; "
            f"Ray's own messages: {logs}")


def disconnect() -> None:
    import ray

    ray.shutdown()


def run_all(todo: list[State], args: Args, sweep: Sweep):
    """The runs as Ray tasks, one CPU each; yields (status, line) as they finish. When the sweep is told to stop,
    every task still pending is cancelled (again at a second signal: its run is killed)."""
    import ray
    from ray.exceptions import RayError, TaskCancelledError

    task = ray.remote(num_cpus=1, max_retries=0)(run_task)  # a run lost with its node is failed: rerun the sweep
    shipped = asdict(replace(args, out=str(Path(args.out).resolve())))
    pending = {task.remote(asdict(state.run), shipped, state.status == "resume", sweep.token): state.run
               for state in todo}
    cancelled = 0
    while pending:
        while cancelled < sweep.stops:
            cancelled += 1
            for ref in pending:
                ray.cancel(ref)
        finished, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        for ref in finished:
            run = pending.pop(ref)
            try:
                yield ray.get(ref)
            except TaskCancelledError:  # cancelled before its run started
                yield "not started", f"{run.name}: not started"
            except RayError as error:  # its worker or node died, or it could not start there
                yield "failed", f"{run.name}: FAILED on Ray: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    """What went wrong, in one line (for an exception raised in a task: that exception, not Ray's traceback)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
