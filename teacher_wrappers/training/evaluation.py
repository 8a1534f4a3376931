"""Evaluation on fixed seeds: `play_episodes` (vectorised), `evaluate` (the student, greedy or sampled), and a run's
`Evaluation` (its seeds, the greedy evaluations during training that draw the deployed student's curve, the
final one)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch


def repeats_mean_loops(env: gym.Env) -> bool:
    """Whether a repeated observation of `env` means a repeated state: a `static_world` observed through its memory
    map (what the agent changes, it changes in front of itself, in view; nothing else changes, nothing is random)."""
    try:
        env.get_wrapper_attr("memory_map")
    except AttributeError:
        return False
    return bool(getattr(env.unwrapped, "static_world", False))


def play_episodes(env_fns: Sequence[Callable[[], gym.Env]], seeds: Sequence[int],
                  choose_actions: Callable[[dict], np.ndarray], stop: Callable[[], bool] = lambda: False,
                  new_episodes: Callable[[np.ndarray], None] = lambda mask: None,
                  stop_loops: bool = False) -> np.ndarray:
    """Plays one episode per seed (episode i on seeds[i]) on sub-envs side by side; returns the episodes' returns.

    `choose_actions(obs)` picks the actions of all the sub-envs at once (one batched forward, on their
    observations stacked as a vector env stacks them); a sub-env that finishes starts the next unplayed seed, and
    `new_episodes(mask)` hears which sub-envs start new episodes (all of them at first), so that a recurrent student
    forgets the episode that ended there. A sub-env with no seed left stops: it is not stepped again, but keeps
    its row in `obs` (its last observation), so that a sampling policy draws as many numbers per step throughout
    and every episode gets the actions it would get beside busy neighbours. `stop()` is asked every step so that
    Ctrl-C ends a long evaluation (KeyboardInterrupt).

    `stop_loops=True` (a deterministic policy of the observation alone: a greedy feed-forward student) ends an
    episode where its observation repeats, if every sub-env allows it (`repeats_mean_loops`): there the same
    observation means the same state, so the policy is in a loop it never leaves, and the episode
    would end at its time limit with the return it has (these tasks reward success only, and success ends the
    episode). Same returns, fewer steps: a weak greedy student's evaluation no longer plays out its loops.
    """
    envs = [make_env() for make_env in env_fns[: len(seeds)]]
    obs = gym.vector.utils.create_empty_array(envs[0].observation_space, len(envs))
    arrays = obs if isinstance(obs, dict) else {None: obs}  # a Dict space's arrays, or the one array

    def put(i: int, observation) -> None:  # sub-env i's observation into its row
        for key, array in arrays.items():
            array[i] = observation if key is None else observation[key]

    episode = np.arange(len(envs))  # the episode each sub-env plays
    returns, running = np.zeros(len(seeds)), np.zeros(len(envs))
    for i, env in enumerate(envs):
        put(i, env.reset(seed=int(seeds[i]))[0])
    next_episode, playing = len(envs), np.ones(len(envs), dtype=bool)
    new_episodes(playing.copy())
    loops = stop_loops and all(repeats_mean_loops(env) for env in envs)
    seen: list[set] = [set() for _ in envs]  # each sub-env's observations this episode (loops)

    def looping(i: int) -> bool:  # sub-env i's observation was seen before in this episode
        key = b"".join(np.ascontiguousarray(value[i]).tobytes() for value in arrays.values())
        repeated = key in seen[i]
        seen[i].add(key)
        return repeated

    for i in range(len(envs) if loops else 0):
        looping(i)
    try:
        while playing.any():
            if stop():
                raise KeyboardInterrupt
            actions, finished = choose_actions(copy.deepcopy(obs)), playing.copy()  # as a vector env hands them out
            for i in np.flatnonzero(playing):
                observation, reward, terminated, truncated, _ = envs[i].step(actions[i])
                put(i, observation)
                running[i] += reward
                finished[i] = terminated or truncated or (loops and looping(i))
            for i in np.flatnonzero(finished):
                returns[episode[i]], running[i] = running[i], 0.0
                episode[i], next_episode = next_episode, next_episode + 1
                playing[i] = episode[i] < len(seeds)
                if playing[i]:
                    put(i, envs[i].reset(seed=int(seeds[episode[i]]), options={})[0])
                    seen[i] = set()
                    if loops:
                        looping(i)
            if finished.any():
                new_episodes(finished)
    finally:
        for env in envs:
            env.close()
    return returns


def evaluate(agent, env_fns: Sequence[Callable[[], gym.Env]], seeds: Sequence[int], greedy: bool = True,
             sample_seed: int = 0, stop: Callable[[], bool] = lambda: False) -> tuple[float, float]:
    """The student (`teacher_wrappers.student.Agent`) on fixed seeds, greedy (argmax) or sampled:
    (success rate, mean return); a recurrent student's state is carried and reset per episode. Every task here
    rewards success and only success."""
    generator = torch.Generator().manual_seed(sample_seed)  # leaves the training RNG untouched
    deterministic = greedy and not getattr(agent, "recurrent", False)  # its action depends on the observation only
    returns = play_episodes(env_fns, seeds, lambda obs: agent.act(obs, greedy, generator), stop, agent.reset,
                            stop_loops=deterministic)
    return float(np.mean(returns > 0)), float(np.mean(returns))


class Evaluation:
    """A run's greedy evaluations of its student: --eval-points of them spread evenly over the training (the
    deployed student's curve, `curve`), the last one the final evaluation on --eval-episodes fixed seeds (from
    --eval-seed, --eval-envs side by side). The ones during training play the first --eval-envs seeds, one batch
    of episodes, and draw nothing from the training's random generators: the training goes on as without them."""

    def __init__(self, args: Any):
        self.args = args
        self.curve: dict[str, list] = {"frames": [], "success_rate": [], "mean_return": []}
        self.make_env: Callable[[], gym.Env] | None = None
        self.agent = None
        self.points, self.at = 0, frozenset()

    def plan(self, make_env: Callable[[], gym.Env] | None, iterations: int, agent=None) -> None:
        """Evaluate `agent` during training on `make_env` (a factory of the student's env; None: never): at evenly
        spaced iterations of `iterations`, the last one left to the final evaluation."""
        self.make_env, self.agent = make_env, agent
        self.points = getattr(self.args, "eval_points", 0) if make_env is not None else 0
        points = self.points
        self.at = frozenset({round(k * iterations / points) for k in range(1, points)} - {0, iterations}
                            if points else ())

    def seeds(self) -> np.ndarray:
        return self.args.eval_seed + np.arange(self.args.eval_episodes)

    def final(self, agent, make_env: Callable[[], gym.Env], greedy: bool = True,
              stop: Callable[[], bool] = lambda: False) -> tuple[float, float]:
        """The student on all the evaluation seeds: (success rate, mean return)."""
        return evaluate(agent, [make_env] * self.args.eval_envs, self.seeds(), greedy, self.args.eval_seed, stop=stop)

    def during_training(self, frames: int, scalar: Callable[[str, float, int], None]) -> None:
        """A point of the curve after `frames` frames of training (`scalar`: TensorBoard's add_scalar)."""
        seeds = self.seeds()[: self.args.eval_envs]
        success, mean_return = evaluate(self.agent, [self.make_env] * len(seeds), seeds, True, self.args.eval_seed)
        self.add(frames, success, mean_return)
        scalar("eval/curve_success_rate", success, frames)

    def add(self, frames: int, success: float, mean_return: float) -> None:
        for key, value in zip(("frames", "success_rate", "mean_return"), (frames, success, mean_return)):
            self.curve[key].append(value)

    def end(self, frames: int, greedy: tuple[float, float]) -> None:
        """The final evaluation closes the curve (if there is one)."""
        if self.points:
            self.add(frames, *greedy)

    def state_dict(self) -> dict:
        return {"eval_curve": {key: list(value) for key, value in self.curve.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.curve = state.get("eval_curve", self.curve)  # older checkpoints have none
