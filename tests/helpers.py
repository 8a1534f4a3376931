"""Hand-built memory maps for unit tests; TensorBoard scalars of a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX


def room_map(width: int = 7, height: int = 7, seen: bool = True) -> np.ndarray:
    """A walled room filling the grid, every cell seen (or none, with seen=False)."""
    memory = np.zeros((width, height, 4), dtype=np.uint8)
    if seen:
        memory[..., 0] = OBJECT_TO_IDX["empty"]
        memory[0, :, 0] = memory[-1, :, 0] = memory[:, 0, 0] = memory[:, -1, 0] = OBJECT_TO_IDX["wall"]
        memory[0, :, 1] = memory[-1, :, 1] = memory[:, 0, 1] = memory[:, -1, 1] = COLOR_TO_IDX["grey"]
    return memory


def put(memory: np.ndarray, pos, kind: str, colour: str = "grey", state: str | None = None) -> None:
    memory[pos][0] = OBJECT_TO_IDX[kind]
    memory[pos][1] = COLOR_TO_IDX[colour]
    memory[pos][2] = STATE_TO_IDX[state] if state else 0


def place_agent(memory: np.ndarray, pos, heading: int, carrying: tuple[str, str] | None = None) -> None:
    """The agent's cell shows what it carries (or empty), as in MemoryMap.observation()."""
    memory[..., 3] = 0
    memory[pos][3] = heading + 1
    if carrying:
        put(memory, pos, *carrying)
    else:
        memory[pos][:3] = (OBJECT_TO_IDX["empty"], 0, 0)


def run_teacher(env, episodes: int, seed: int = 0, on_step=None, on_episode_end=None) -> float:
    """Act with actions sampled from obs["teacher_probs"]; returns the success rate.

    `on_step(obs)` sees every observation, `on_episode_end(env)` every finished episode.
    """
    rng = np.random.default_rng(seed)
    successes = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        terminated = truncated = False
        while not (terminated or truncated):
            if on_step:
                on_step(obs)
            probs = obs["teacher_probs"].astype(np.float64)
            obs, reward, terminated, truncated, _ = env.step(int(rng.choice(len(probs), p=probs / probs.sum())))
        if on_episode_end:
            on_episode_end(env)
        successes += reward > 0
    return successes / episodes


def scalars(run_path) -> dict[str, list[float]]:
    """Every scalar a TensorBoard event folder holds, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_path))
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# -- the training scripts in this process ------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# Python's own warning filters (`python script.py`): what a user sees on stderr, not pytest's
_PYTHON_WARNING_FILTERS = [("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, None),
                           ("ignore", PendingDeprecationWarning, None), ("ignore", ImportWarning, None),
                           ("ignore", ResourceWarning, None)]


class Finished:
    """What a finished script leaves, as subprocess.run's CompletedProcess has it: returncode, stdout, stderr."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_script(script: str, *args: str, cwd, env: dict | None = None) -> Finished:
    """`python algorithms/<script> ARGS` in this process: saves the ~20 s of imports a subprocess pays.

    For tests of what a run leaves (summary, TensorBoard, checkpoints, weights, the error line and exit status),
    not of the process (signals; the crash handler is called here as Python calls it). The exit status is
    SystemExit's code, or 1 after sys.excepthook for an uncaught exception, as the interpreter does; stdout,
    stderr and Python's default warnings (formatted) are captured. Whatever the script changes in this process is
    put back: argv, cwd, environment, signal handlers, sys.excepthook, torch's global settings, every random
    generator and the garbage collector (a script ends with gc.freeze()), so that a run does not depend on the runs
    before it.
    """
    import contextlib
    import gc
    import io
    import os
    import random
    import runpy
    import signal
    import sys
    import warnings

    import torch
    from torch.distributions import Distribution

    saved = {"argv": sys.argv, "cwd": os.getcwd(), "environ": dict(os.environ), "excepthook": sys.excepthook,
             "signals": {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)},
             "deterministic": torch.backends.cudnn.deterministic, "validate": Distribution._validate_args,
             "threads": torch.get_num_threads(), "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "python_rng": random.getstate()}
    path = ROOT / "algorithms" / script
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env or {})
        os.chdir(cwd)
        sys.argv = [str(path), *map(str, args)]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
                warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            for action, category, module in reversed(_PYTHON_WARNING_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "")
            try:
                runpy.run_path(str(path), run_name="__main__")
                code = 0
            except SystemExit as end:
                if end.code is None or isinstance(end.code, int):
                    code = end.code or 0
                else:  # sys.exit("message"): Python prints it
                    print(end.code, file=sys.stderr)
                    code = 1
            except Exception:  # noqa: BLE001  (uncaught: the interpreter calls the hook, exit 1)
                sys.excepthook(*sys.exc_info())
                code = 1
            for warning in caught:
                stderr.write(warnings.formatwarning(warning.message, warning.category, warning.filename,
                                                    warning.lineno, warning.line))
    finally:
        sys.argv, sys.excepthook = saved["argv"], saved["excepthook"]
        os.chdir(saved["cwd"])
        os.environ.clear()
        os.environ.update(saved["environ"])
        for signum, handler in saved["signals"].items():
            signal.signal(signum, handler)
        gc.unfreeze()  # what the script froze is collected again
        torch.backends.cudnn.deterministic = saved["deterministic"]
        Distribution.set_default_validate_args(saved["validate"])
        torch.set_num_threads(saved["threads"])
        torch.set_rng_state(saved["torch_rng"])
        np.random.set_state(saved["numpy_rng"])
        random.setstate(saved["python_rng"])
    return Finished(code, stdout.getvalue(), stderr.getvalue())
