"""`Run`: one training run, the parts of this package put together in the order a training script needs them."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from teacher_wrappers.atomic import write_text
from teacher_wrappers.training.checkpoints import Checkpoints, load_checkpoint
from teacher_wrappers.training.evaluation import Evaluation
from teacher_wrappers.training.guard import Guard
from teacher_wrappers.training.logs import RunLogs
from teacher_wrappers.training.stats import EpisodeStats, first_reaching


class Run:
    """One training run. Made before anything is seeded or built: it validates `--resume`'s checkpoint (one line
    and exit 2 if it does not fit) and names the run, and changes nothing outside itself. The script then calls,
    in order: `start` (fresh or resumed; from then on Ctrl-C, SIGTERM and exceptions are the run's, see `Guard`),
    `record_step` every env step, `end_iteration` every iteration, `end_training` after the loop,
    `final_evaluation` around its evaluations, and `write_summary` (which puts the handlers back)."""

    def __init__(self, args: Any, script: str, curves: Sequence[str] = ()):
        self.args, self.checkpoint = args, load_checkpoint(args.resume, args, script) if args.resume else None
        default = f"{args.env_id.replace('/', '_')}__{args.exp_name}__{args.seed}__{int(time.time())}"
        self.name = self.checkpoint["run_name"] if self.checkpoint else args.run_name or default
        self.path = Path(args.run_dir) / self.name
        self.greedy_envs = int(args.num_envs * args.greedy_fraction)  # the first ones act greedily
        self.stats = stats = EpisodeStats(args.num_envs, self.greedy_envs, args.success_window, curves)
        self.evaluation, self.guard = Evaluation(args), Guard()
        # asked of the parts directly: every env step (EpisodeStats.record_step: the finished episodes), the recent
        # episodes' mean return, the evaluation seeds
        self.record_step, self.mean_return = stats.record_step, stats.mean_return
        self.eval_seeds = self.evaluation.seeds
        self.checkpoints = Checkpoints(script, args, self.name, self.path / "checkpoints")
        self.start_iteration, self.wall_before, self.start_time, self.training_seconds = 1, 0.0, time.time(), 0.0
        self.state: dict = {}  # the script's own part of the checkpoint resumed from (see `start`)
        self.logs: RunLogs | None = None  # TensorBoard and the progress bar, from `start`

    resumed = property(lambda self: self.checkpoint is not None)
    global_step = property(lambda self: self.stats.global_step)
    episode_lengths = property(lambda self: self.stats.episode_lengths)
    curve = property(lambda self: self.stats.curve)
    interrupted = property(lambda self: self.guard.interrupted)
    wall_seconds = property(lambda self: self.wall_before + time.time() - self.start_time)
    writer = property(lambda self: self.logs.writer)  # TensorBoard's SummaryWriter, from `start`

    def start(self, envs: gym.vector.VectorEnv, modules: dict[str, Any], state: Callable[[], dict] | None = None,
              eval_env: Callable[[], gym.Env] | None = None) -> tuple[dict, torch.Tensor]:
        """The first observation and done flags, fresh (envs reset on the seed) or where --resume's checkpoint
        stopped (`Checkpoints.restore`; a copy of the script's `state()` saved there is in `self.state`). With
        `eval_env` (the student's env) `modules["agent"]` is evaluated --eval-points times during training."""
        args, checkpoint = self.args, self.checkpoint
        self.checkpoints.attach(envs, modules, state)
        self.evaluation.plan(eval_env, args.num_iterations, modules.get("agent"))
        if checkpoint is None:
            next_obs, next_done = envs.reset(seed=args.seed)[0], torch.zeros(args.num_envs)
        else:
            next_obs, next_done = self.checkpoints.restore(checkpoint)
            for part in (self.stats, self.evaluation):  # their own parts of the checkpoint
                part.load_state_dict(checkpoint)
            self.start_iteration, self.wall_before = checkpoint["iteration"] + 1, checkpoint["wall_seconds"]
            self.state = copy.deepcopy(checkpoint["state"])  # the script changes it; the checkpoint stays as it was
        self.logs = RunLogs(args, self.name, self.path, self.global_step, purge=checkpoint is not None)
        self.stats.scalar = self.logs.writer.add_scalar
        self.start_time = time.time()
        # what a crash before the first iteration ends leaves: the checkpoint resumed from, or the fresh start
        self.checkpoints.latest = checkpoint or self._snapshot(0, next_obs, next_done)
        self.guard.install(self.path, lambda: self.checkpoints.latest)
        return next_obs, next_done

    def _snapshot(self, iteration: int, next_obs: dict, next_done: torch.Tensor) -> dict:
        parts = {**self.stats.state_dict(), **self.evaluation.state_dict(), "wall_seconds": self.wall_seconds}
        return self.checkpoints.take(iteration, parts, next_obs, next_done)

    def iterations(self) -> Iterator[int]:
        """The iterations left to train (from 1, or after the checkpoint's); stops early on Ctrl-C/SIGTERM."""
        return itertools.takewhile(lambda _: not self.interrupted, range(self.start_iteration,
                                                                         self.args.num_iterations + 1))

    def end_iteration(self, iteration: int, next_obs: dict, next_done: torch.Tensor, curves: dict | None = None,
                      **postfix) -> None:
        """Logs the iteration (learning curve, success rate, SPS, progress bar with `postfix`), evaluates the
        student at the --eval-points, keeps the iteration's checkpoint (`Checkpoints.keep`)."""
        now = time.time()
        self.stats.add_point(self.wall_before + now - self.start_time, **(curves or {}))
        if iteration in self.evaluation.at:
            self.evaluation.during_training(self.global_step, self.writer.add_scalar)
        sps = int((self.global_step - (self.start_iteration - 1) * self.args.batch_size) / (now - self.start_time))
        self.logs.iteration(self.global_step, self.args.batch_size, sps, self.stats.success_rate, **postfix)
        self.checkpoints.keep(self._snapshot(iteration, next_obs, next_done))

    def end_training(self) -> None:
        """Writes the final checkpoint; on Ctrl-C/SIGTERM stops here (exit 130)."""
        self.logs.bar.close()
        path = self.checkpoints.write()
        if self.interrupted:
            self.stop(f"interrupted: checkpoint of iteration {self.checkpoints.latest['iteration']} written to "
                      f"{path}; continue with --resume")
        self.training_seconds = self.wall_seconds
        print(f"evaluating on {self.args.eval_episodes} fixed seeds ...", file=sys.stderr)

    def evaluate(self, agent, make_env: Callable[[], gym.Env], greedy: bool = True) -> tuple[float, float]:
        """The student on the evaluation seeds (--eval-episodes from --eval-seed, --eval-envs side by side)."""
        return self.evaluation.final(agent, make_env, greedy, stop=lambda: self.interrupted)

    @contextlib.contextmanager
    def final_evaluation(self) -> Iterator[None]:
        """Around the final evaluations: Ctrl-C stops them (exit 130, no summary; the model is saved)."""
        try:
            yield
        except KeyboardInterrupt:
            self.stop(f"interrupted during the final evaluation: no summary written; the trained model is in "
                      f"{self.checkpoints.folder / 'latest.pt'}")

    def write_summary(self, method: str, greedy: tuple[float, float], sampled: tuple[float, float], **extra) -> dict:
        """summary.json and the eval/ scalars (`write_summary`); then closes the run (`stop` without exiting)."""
        self.evaluation.end(self.global_step, greedy)  # the final evaluation closes the deployed student's curve
        summary = summary_of(self, method, greedy, sampled, extra)
        write_summary(summary, self.path / "summary.json", self.writer, self.name)
        self._close()
        return summary

    def stop(self, message: str) -> None:  # ends the run early: exit 130
        print(message, file=sys.stderr)
        self._close()
        sys.exit(130)

    def _close(self) -> None:
        self.checkpoints.envs.close()
        self.logs.close()
        self.guard.remove()  # the handlers `start` replaced


def summary_of(run: Run, method: str, greedy: tuple[float, float], sampled: tuple[float, float], extra: dict) -> dict:
    """What summary.json holds: the run's settings and results, its learning curve and evaluation curve."""
    args, curve, wall = run.args, run.curve, run.training_seconds
    hit = first_reaching(curve, 0.9, args.success_window)
    return {
        "env_id": args.env_id, "method": method, "seed": args.seed, "frames": run.global_step,
        "wall_seconds": wall, "sps": run.global_step / wall if wall else 0.0,
        "eval_success_rate": greedy[0], "eval_mean_return": greedy[1], "eval_episodes": args.eval_episodes,
        "eval_sampled_success_rate": sampled[0], "eval_sampled_mean_return": sampled[1],
        "frames_to_90": None if hit is None else curve["frames"][hit],
        "wall_seconds_to_90": None if hit is None else curve["wall_seconds"][hit],
        **extra, "learning_curve": curve, "eval_curve": run.evaluation.curve, "args": asdict(args),
    }


def write_summary(summary: dict, path: Path, writer, name: str) -> None:
    """`summary` to `path` (atomically), its evaluation on TensorBoard (eval/), and one line on stdout."""
    for tag, key in (("success_rate", "eval_success_rate"), ("mean_return", "eval_mean_return"),
                     ("sampled_success_rate", "eval_sampled_success_rate")):
        writer.add_scalar(f"eval/{tag}", summary[key], summary["frames"])
    write_text(path, json.dumps(summary, indent=1))
    print(f"{name}: eval success {summary['eval_success_rate']:.2f} greedy, {summary['eval_sampled_success_rate']:.2f} "
          f"sampled, frames to 90% {summary['frames_to_90']}, {summary['sps']:.0f} SPS; summary in {path}")
