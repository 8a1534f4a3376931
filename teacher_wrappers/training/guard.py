"""How a run ends when it is stopped: Ctrl-C or SIGTERM finish the iteration, then a checkpoint is written (exit
130); an exception writes the checkpoint of the last finished iteration and `error.log`, and ends the run with
one line (exit 1)."""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from teacher_wrappers.training.checkpoints import save_torch
from teacher_wrappers.training.checks import one_line

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def crash_handler(run_path: Path, latest: Callable[[], dict | None]):
    """sys.excepthook for the training: any exception (a planner server answering HTTP 500, a full disk) writes
    the checkpoint of the last finished iteration, `latest()`, then ends the run with one line; the traceback
    goes to <run>/error.log."""

    def hook(kind, error, tb):
        if not issubclass(kind, Exception):  # KeyboardInterrupt, SystemExit: Python's usual handling
            return sys.__excepthook__(kind, error, tb)
        log, path = run_path / "error.log", run_path / "checkpoints" / "latest.pt"
        try:
            run_path.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(traceback.format_exception(kind, error, tb)))
            checkpoint = latest()
            if checkpoint is None:
                saved = "no checkpoint: the training had not started"
            else:
                save_torch(checkpoint, path)
                saved = f"checkpoint of iteration {checkpoint['iteration']} written to {path}; continue with --resume"
        except Exception as save_error:  # noqa: BLE001  (say both, in one line)
            saved = f"no checkpoint written ({type(save_error).__name__}: {one_line(save_error)})"
        print(f"error: {kind.__name__}: {one_line(error)} (traceback in {log}); {saved}", file=sys.stderr)

    return hook


class Guard:
    """The process-wide handlers of a run, in place from `install` (the training starts) to `remove` (the run
    ends): the crash handler as sys.excepthook, and SIGINT/SIGTERM, which only set `interrupted` (the script
    finishes its iteration, then the run writes a checkpoint). `remove` puts back the handlers found."""

    def __init__(self):
        self.interrupted = False
        self._previous: tuple | None = None  # (sys.excepthook, {signal: handler}) while installed

    def install(self, run_path: Path, latest: Callable[[], dict | None]) -> None:
        if self._previous is None:
            self._previous = sys.excepthook, {signum: signal.getsignal(signum) for signum in SIGNALS}
        sys.excepthook = crash_handler(run_path, latest)
        for signum in SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.interrupted = True

    def remove(self) -> None:
        if self._previous is None:
            return
        sys.excepthook, handlers = self._previous
        for signum, handler in handlers.items():
            if handler is not None:  # None: a handler not set from Python, which Python cannot put back
                signal.signal(signum, handler)
        self._previous = None
