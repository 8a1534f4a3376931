"""A vector env whose sub-envs step in a few worker processes, several sub-envs per process.

Gymnasium's AsyncVectorEnv runs one process per sub-env: 16 sub-envs on 2 cores are 16 processes
taking turns, and every step is 16 round trips. `GroupedAsyncVectorEnv` splits the sub-envs over
`workers` processes (one per core), each stepping its share in a SyncVectorEnv: one round trip per
worker and step, and no more busy processes than cores. Observations, rewards and infos come back in
the same layout (and with the same autoreset) as a SyncVectorEnv over all the sub-envs.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import CloudpickleWrapper, batch_space


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _worker(pipe, env_fns_wrapper, wrap_group_wrapper, vector_kwargs) -> None:
    """Serve one group of sub-envs: (command, data) in, ("ok", result) or ("error", text) out."""
    envs = None
    try:
        envs = gym.vector.SyncVectorEnv(env_fns_wrapper.fn, **vector_kwargs)
        if wrap_group_wrapper.fn is not None:
            envs = wrap_group_wrapper.fn(envs)
        pipe.send(("ok", (envs.single_observation_space, envs.single_action_space, envs.metadata)))
        while True:
            command, data = pipe.recv()
            if command == "close":
                pipe.send(("ok", None))
                break
            try:
                pipe.send(("ok", _serve(envs, command, data)))
            except Exception:  # reported in the main process, with the worker's traceback
                pipe.send(("error", traceback.format_exc()))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    except Exception:
        pipe.send(("error", traceback.format_exc()))
    finally:
        if envs is not None:
            envs.close()
        pipe.close()


def _serve(envs: gym.vector.SyncVectorEnv, command: str, data: Any) -> Any:
    if command == "step":
        return envs.step(data)
    if command == "reset":
        seeds, options = data
        return envs.reset(seed=seeds, options=options)
    if command == "call":
        name, args, kwargs = data
        return envs.call(name, *args, **kwargs)
    if command == "get_attr":
        return envs.get_attr(data)
    if command == "set_attr":
        name, values = data
        return envs.set_attr(name, values)
    if command == "cpu_time":
        return time.process_time()
    if command == "group_call":  # a method of the group's vector env itself (e.g. its wrapper's)
        name, args, kwargs = data
        attr = getattr(envs, name)
        return attr(*args, **kwargs) if callable(attr) else attr
    if command == "group_setattr":
        name, value = data
        return setattr(envs, name, value)
    if command == "envs_state":  # the sub-envs themselves, to continue exactly after a checkpoint
        return pickle.dumps(envs.unwrapped.envs)
    if command == "load_envs_state":
        envs.unwrapped.envs = pickle.loads(data)
        return None
    raise ValueError(f"unknown command {command!r}")


class GroupedAsyncVectorEnv(gym.vector.VectorEnv):
    """`env_fns` split over `workers` processes (default: the cores this process may use).

    `wrap_group`, if given, wraps each worker's SyncVectorEnv in the worker (a VectorWrapper such as
    TeacherVectorWrapper: one teacher per worker, batched over its sub-envs); `call_groups` and
    `set_group_attr` reach those wrappers.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], workers: int | None = None,
                 context: str | None = None,
                 wrap_group: Callable[[gym.vector.VectorEnv], gym.vector.VectorEnv] | None = None, **vector_kwargs):
        self.num_envs = len(env_fns)
        workers = min(self.num_envs, workers or usable_cores())
        self.groups = [list(group) for group in np.array_split(np.arange(self.num_envs), workers)]
        ctx = multiprocessing.get_context(context)
        self._pipes, self._processes = [], []
        for group in self.groups:
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_worker, daemon=True, name=f"GroupedAsyncVectorEnv-{len(self._pipes)}",
                                  args=(child, CloudpickleWrapper([env_fns[i] for i in group]),
                                        CloudpickleWrapper(wrap_group), vector_kwargs))
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
        self.closed = False
        spaces = self._receive_all()
        self.single_observation_space, self.single_action_space, self.metadata = spaces[0]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None

    def _receive_all(self) -> list:
        replies = [pipe.recv() for pipe in self._pipes]
        errors = [text for status, text in replies if status == "error"]
        if errors:
            raise RuntimeError(f"a GroupedAsyncVectorEnv worker failed:\n{errors[0]}")
        return [result for _, result in replies]

    def _ask_all(self, command: str, per_group: Sequence[Any]) -> list:
        for pipe, data in zip(self._pipes, per_group):
            pipe.send((command, data))
        return self._receive_all()

    def _split(self, values: Sequence[Any]) -> list[list[Any]]:
        return [[values[i] for i in group] for group in self.groups]

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, int):  # as SyncVectorEnv: sub-env i gets seed + i
            seed = [None if seed is None else seed + i for i in range(self.num_envs)]
        options = options or {}
        masks = self._split(options["reset_mask"]) if "reset_mask" in options else [None] * len(self.groups)
        data = [(seeds, {**options, "reset_mask": np.array(mask)} if mask is not None else options or None)
                for seeds, mask in zip(self._split(seed), masks)]
        results = self._ask_all("reset", data)
        return self._concatenate_obs([obs for obs, _ in results]), _merge_infos([info for _, info in results],
                                                                                  self._sizes())

    def step(self, actions):
        results = self._ask_all("step", [np.asarray(actions)[group] for group in self.groups])
        obs, rewards, terminations, truncations, infos = zip(*results)
        return (self._concatenate_obs(obs), np.concatenate(rewards), np.concatenate(terminations),
                np.concatenate(truncations), _merge_infos(infos, self._sizes()))

    def call(self, name: str, *args, **kwargs) -> tuple:
        return tuple(value for values in self._ask_all("call", [(name, args, kwargs)] * len(self.groups))
                     for value in values)

    def get_attr(self, name: str) -> tuple:
        return tuple(value for values in self._ask_all("get_attr", [name] * len(self.groups)) for value in values)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs one value per sub-env ({self.num_envs}), got {len(values)}")
        self._ask_all("set_attr", [(name, group_values) for group_values in self._split(values)])

    def call_groups(self, name: str, args_per_group: Sequence[tuple] | None = None) -> list:
        """`name` called (or read) on each worker's (wrapped) vector env, with its own args: one result per worker."""
        args_per_group = args_per_group or [()] * len(self.groups)
        return self._ask_all("group_call", [(name, tuple(args), {}) for args in args_per_group])

    def set_group_attr(self, name: str, value: Any) -> None:
        self._ask_all("group_setattr", [(name, value)] * len(self.groups))

    def envs_state(self) -> list[bytes]:
        """The sub-envs of every worker, pickled (for checkpoints; `load_envs_state` puts them back)."""
        return self._ask_all("envs_state", [None] * len(self.groups))

    def load_envs_state(self, state: Sequence[bytes]) -> None:
        if len(state) != len(self.groups):
            raise ValueError(f"the saved sub-envs come from {len(state)} worker processes, this vector env has "
                             f"{len(self.groups)} (--async-envs uses one per usable core)")
        self._ask_all("load_envs_state", list(state))

    def worker_cpu_times(self) -> list[float]:
        """Each worker process's CPU seconds so far (for benchmarks: differences between two calls)."""
        return self._ask_all("cpu_time", [None] * len(self.groups))

    def close_extras(self, **kwargs) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(("close", None))
                pipe.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        for pipe in self._pipes:
            pipe.close()

    def _sizes(self) -> list[int]:
        return [len(group) for group in self.groups]

    def _concatenate_obs(self, parts: Sequence[Any]) -> Any:
        if isinstance(self.single_observation_space, gym.spaces.Dict):
            return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        return np.concatenate(parts)


def _merge_infos(infos: Sequence[dict], sizes: Sequence[int]) -> dict:
    """Vector infos of consecutive groups of sub-envs -> the vector info of all (missing parts: 0 / None)."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(key for info in infos for key in info):
        values = [info.get(key) for info in infos]
        if any(isinstance(value, dict) for value in values):
            merged[key] = _merge_infos([value or {} for value in values], sizes)
            continue
        template = next(np.asarray(value) for value in values if value is not None)
        parts = []
        for value, size in zip(values, sizes):
            if value is None:
                value = np.full((size, *template.shape[1:]), None if template.dtype == object else 0,
                                dtype=template.dtype)
            parts.append(np.asarray(value))
        merged[key] = np.concatenate(parts)
    return merged


def make_vector_env(env_fns: Sequence[Callable[[], gym.Env]], asynchronous: bool = False,
                    workers: int | None = None, **vector_kwargs) -> gym.vector.VectorEnv:
    """SyncVectorEnv, or with `asynchronous` a GroupedAsyncVectorEnv: the sub-envs spread over `workers`
    processes (default: one per usable core, never more than the sub-envs), whose state a checkpoint can
    save."""
    if not asynchronous:
        return gym.vector.SyncVectorEnv(list(env_fns), **vector_kwargs)
    return GroupedAsyncVectorEnv(env_fns, workers=workers, **vector_kwargs)
