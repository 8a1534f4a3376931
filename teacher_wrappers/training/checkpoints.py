"""Checkpoints: what one holds, how it is written, and the checks before a run continues from one.

A checkpoint is one consistent state of a run at the end of an iteration, everything needed to continue with the
results of an uninterrupted run: the script's modules (network weights, optimizer), the random generators, the
sub-environments and the teacher, the episode statistics and curves, and the script's own state.
`load_checkpoint` refuses, in one line, a file that is not a checkpoint of the script or was written with other
settings (`RESUME_FREE` lists the settings a resumed run may change).
"""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from teacher_wrappers.atomic import atomic_path
from teacher_wrappers.training.checks import fail, one_line

CHECKPOINT_FORMAT = 2  # checkpoints of older versions hold the teacher's internals; they cannot be resumed
# Settings that do not change the training: a resumed run may set them anew.
RESUME_FREE = frozenset({
    "resume", "resume_allow_budget_change", "progress", "run_name", "run_dir", "track", "wandb_project_name",
    "wandb_entity", "checkpoint_every", "eval_episodes", "eval_seed", "eval_envs", "eval_points",
    "batch_size", "minibatch_size", "num_iterations",  # these three follow from the others
})


def save_torch(state: Any, path: str | Path) -> None:
    """torch.save, atomically: a reader sees the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def checkpoint_differences(saved: dict, args: Any) -> list[str]:
    """'--name here (checkpoint: there)' for every setting of `args` that changes the training and differs."""
    current = asdict(args)
    free = RESUME_FREE | ({"total_timesteps"} if args.resume_allow_budget_change else set())
    # a setting added after the checkpoint was written trained it at its default
    saved = {**{f.name: f.default for f in fields(args) if f.default is not MISSING and f.name not in saved}, **saved}
    return [f"--{key.replace('_', '-')} {current.get(key, '(absent)')} (checkpoint: {saved.get(key, '(absent)')})"
            for key in sorted(set(saved) | set(current)) if key not in free and saved.get(key) != current.get(key)]


def load_checkpoint(path: str | Path, args: Any, script: str) -> dict:
    """The checkpoint at `path` if `script` wrote it for a run with these settings; else a one-line error.

    Called before anything of the run is touched (TensorBoard's purge_step hides the events past it).
    """
    try:
        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
    except FileNotFoundError:
        fail(f"checkpoint {path} does not exist")
    except Exception as error:  # noqa: BLE001  (empty, truncated, random bytes, a folder: whatever torch says)
        fail(f"cannot read checkpoint {path}: {type(error).__name__}: {one_line(error)}")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("args"), dict) or "script" not in checkpoint:
        fail(f"{path} is not a checkpoint of {script} (it records no script and settings)")
    if checkpoint["script"] != script:
        fail(f"checkpoint {path} was written by {checkpoint['script']}, not {script}; "
             f"resume it with algorithms/{checkpoint['script']}")
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        fail(f"checkpoint {path} was written by an older version of teacher-wrappers and cannot be resumed; "
             "its weights are under its 'agent' key (torch.load)")
    differences = checkpoint_differences(checkpoint["args"], args)
    if differences:
        fail(f"checkpoint {path} was written with other settings: {'; '.join(differences)}; "
             "resume with the checkpoint's settings")
    return checkpoint


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def vector_env_state(envs: gym.vector.VectorEnv) -> Any:
    """The sub-environments' state (pickled), where it can be saved: sub-envs in this process, or in the
    worker processes of a GroupedAsyncVectorEnv; None otherwise."""
    from teacher_wrappers.grouped import GroupedAsyncVectorEnv

    base = envs.unwrapped
    if isinstance(base, gym.vector.SyncVectorEnv):
        return pickle.dumps(base.envs)
    if isinstance(base, GroupedAsyncVectorEnv):
        return base.envs_state()
    return None


def load_vector_env_state(envs: gym.vector.VectorEnv, state: Any) -> None:
    from teacher_wrappers.grouped import GroupedAsyncVectorEnv

    base = envs.unwrapped
    if isinstance(base, gym.vector.SyncVectorEnv):
        base.envs = pickle.loads(state)
    elif isinstance(base, GroupedAsyncVectorEnv):
        base.load_envs_state(state)
    else:
        raise TypeError(f"cannot restore the sub-environments of a {type(base).__name__}")


def copied(state: Any) -> Any:
    """A copy of a state dict (a module's, an optimizer's: dicts, lists and tuples of tensors, arrays and plain
    values), its tensors and arrays copied: it does not change with them. Several times faster than deepcopy."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, np.ndarray):
        return state.copy()
    if isinstance(state, dict):
        copy_ = copy.copy(state)  # its class and attributes (a module's state dict keeps its `_metadata`)
        for key, value in state.items():
            copy_[key] = copied(value)
        return copy_
    if type(state) in (list, tuple):
        return type(state)(copied(value) for value in state)
    return state


class Checkpoints:
    """The checkpoints of one run of `script`: snapshots of its state at the end of an iteration (`take`), kept
    in memory (`latest`, what a crash writes) and written to `folder` (latest.pt, iter_NNNNNN.pt).

    A snapshot holds copies of everything that changes later (the modules' tensors, the sub-envs pickled, the
    teacher's state; the script's `state()` gives copies too), so that it stays the state of its iteration
    while the next one runs: a crash mid-iteration writes one consistent state, and resuming from it gives the
    results of an uninterrupted run."""

    def __init__(self, script: str, args: Any, name: str, folder: Path):
        self.script, self.args, self.name, self.folder = script, args, name, Path(folder)
        self.latest: dict | None = None  # the last snapshot: nothing until the training starts
        self.envs: Any = None
        self.modules: dict[str, Any] = {}
        self.state: Callable[[], dict] = dict

    def attach(self, envs: gym.vector.VectorEnv, modules: dict[str, Any], state: Callable[[], dict] | None = None):
        """What a snapshot saves: `envs` (their sub-envs where they can be saved, video recorders cannot; their
        teacher), `modules` (state_dict / load_state_dict: networks, optimizers) and the script's `state()`."""
        self.envs, self.modules, self.state = envs, modules, state or dict

    @property
    def saves_envs(self) -> bool:
        return not self.args.capture_video  # video recorders cannot be saved

    def take(self, iteration: int, parts: dict, next_obs: dict, next_done: torch.Tensor) -> dict:
        """The snapshot after `iteration` (0: before the first), with the run's own `parts` (plain copies: the
        episode statistics, the curves, wall_seconds) and the observation and done flags the next one starts
        from."""
        envs = self.envs
        return {
            "format": CHECKPOINT_FORMAT, "script": self.script, "args": asdict(self.args), "run_name": self.name,
            "iteration": iteration, **parts,
            **{key: copied(module.state_dict()) for key, module in self.modules.items()},
            "rng": rng_state(), "envs": vector_env_state(envs) if self.saves_envs else None,
            "teacher": envs.teacher_state_dict() if hasattr(envs, "teacher_state_dict") else None,
            "next_obs": copied(next_obs), "next_done": next_done.detach().cpu().clone(), "state": self.state(),
        }

    def restore(self, checkpoint: dict) -> tuple[dict, torch.Tensor]:
        """Puts the modules, the random generators, the teacher and the sub-envs back as `checkpoint` holds them
        (copied: `checkpoint` stays as it was); returns the observation and done flags to go on from. Sub-envs that
        could not be saved (video recorders) start new episodes (done: a recurrent state restarts)."""
        try:
            for key, module in self.modules.items():
                module.load_state_dict(copied(checkpoint[key]))  # an optimizer keeps the tensors it gets
        except (RuntimeError, ValueError, KeyError) as error:
            fail(f"checkpoint {self.args.resume} does not fit this network: {one_line(error)}")
        set_rng_state(checkpoint["rng"])
        if checkpoint["teacher"] is not None:  # its counters, answers and this episode's visits
            self.envs.load_teacher_state_dict(checkpoint["teacher"])
        if checkpoint["envs"] is None:
            return self.envs.reset(seed=self.args.seed + checkpoint["iteration"] + 1)[0], torch.ones(self.args.num_envs)
        load_vector_env_state(self.envs, checkpoint["envs"])
        return copied(checkpoint["next_obs"]), checkpoint["next_done"].clone()

    def keep(self, snapshot: dict) -> None:
        """`snapshot` becomes the latest; written every --checkpoint-every iterations."""
        self.latest = snapshot
        every, iteration = self.args.checkpoint_every, snapshot["iteration"]
        if every and iteration % every == 0:
            save_torch(snapshot, self.folder / f"iter_{iteration:06d}.pt")
            self.write()

    def write(self) -> Path:
        """The latest snapshot to latest.pt."""
        path = self.folder / "latest.pt"
        save_torch(self.latest, path)
        return path
