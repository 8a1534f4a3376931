"""The local backend: a sweep's runs as child processes of this machine, each in its own process group.

`Sweep` holds what the sweep's process shares between its runs: the folder's lock (inherited by every run, so
that it is held while any of them lives), the children, and stopping (SIGTERM to every run in flight, SIGKILL
after GRACE_SECONDS or at a second signal). `execute` runs one run and reads its summary back; `run_locally`
runs several at a time. The Ray backend executes each run on its worker with these too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from benchmarks.sweep.job import ROOT, Args, Run, State, SweepError, command

LOCK_NAME = ".sweep.lock"
GRACE_SECONDS = 60  # a run told to stop gets this long to write its checkpoint before it is killed


class Sweep:
    """Children in their own process groups, so that one signal reaches a run and all its workers.

    The sweep's process has one, which holds the folder's lock and stops on a signal (`on_signal`); a Ray task has
    one of its own, without the lock, stopped through `interrupt` (see `ray_backend`)."""

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


def run_locally(todo: list[State], args: Args, sweep: Sweep):
    """The runs, --workers at a time; yields (status, line) as they finish."""
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(execute, state.run, args, state.status == "resume", sweep) for state in todo]
        for future in as_completed(futures):
            yield future.result()
