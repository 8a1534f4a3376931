"""The run machinery the training scripts share: everything that is not the algorithm.

`algorithms/ppo.py` and `algorithms/ppo_teacher.py` keep the algorithm (settings, environments, the
network's use, the rollout, GAE, the update); this module keeps, once, what makes a run safe to stop
and resume and easy to compare:

- `fail`, `check_args`: one-line errors (exit 2) for bad settings, before anything is written.
- Checkpoints: `load_checkpoint` refuses, in one line, a file that is not a checkpoint of the script or
  was written with other settings (`RESUME_FREE` lists the settings a resumed run may change).
- `Run`: the run folder, TensorBoard, the progress bar, Ctrl-C/SIGTERM (finish the iteration, write a
  checkpoint, exit 130), crashes (write the last iteration's checkpoint and `error.log`, one line, exit
  1), the episode bookkeeping and learning curve, checkpoints that continue exactly (weights, optimizer,
  random generators, sub-environments, the teacher's state), the final evaluation and `summary.json`.
- `atomic_path`, `write_text` (from teacher_wrappers.atomic), `save_torch`: a reader sees the old file or the
  new one, never half.
- `play_episodes`, `evaluate`: the vectorised evaluation on fixed seeds.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import random
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from minigrid.minigrid_env import MiniGridEnv
from tqdm import tqdm

from teacher_wrappers.atomic import atomic_path, write_text

CHECKPOINT_FORMAT = 2  # checkpoints of older versions hold the teacher's internals; they cannot be resumed
# Settings that do not change the training: a resumed run may set them anew.
RESUME_FREE = frozenset({
    "resume", "resume_allow_budget_change", "progress", "run_name", "run_dir", "track", "wandb_project_name",
    "wandb_entity", "checkpoint_every", "eval_episodes", "eval_seed", "eval_envs", "eval_points",
    "batch_size", "minibatch_size", "num_iterations",  # these three follow from the others
})


# ---------------------------------------------------------------------------------------------- errors
def fail(message: str, code: int = 2):
    """Ends the program with one line on stderr (exit 2: bad input)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500] or type(error).__name__


def check_choice(value: str, valid: Sequence[str], what: str, plural: str = "") -> None:
    """One line and exit 2 unless `value` is one of `valid`: "unknown <what> 'x'; valid <plural>: a, b"."""
    if value not in valid:
        fail(f"unknown {what} {value!r}; valid{' ' + plural if plural else ''}: {', '.join(valid)}")


def check_args(args: Any) -> None:
    """The checks every training script needs: counts, the greedy fraction, the budget, the student, the env id."""
    from teacher_wrappers.envs import NAMESPACE, TASKS
    from teacher_wrappers.student import STUDENTS

    for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0 <= args.greedy_fraction < 1:
        fail(f"--greedy-fraction must be at least 0 and below 1, got {args.greedy_fraction}: at least one "
             "environment samples its actions")
    batch = args.num_envs * args.num_steps
    if args.total_timesteps < batch:
        fail(f"--total-timesteps {args.total_timesteps} is below one batch (--num-envs x --num-steps = {batch}): "
             "nothing would be trained")
    if args.num_minibatches > batch:
        fail(f"--num-minibatches {args.num_minibatches} is more than the batch of {batch} samples")
    student = getattr(args, "student", "mlp")
    check_choice(student, STUDENTS, "--student")
    if student == "lstm" and args.num_envs % args.num_minibatches:
        fail(f"--student lstm trains on minibatches of whole environments: --num-envs {args.num_envs} must be a "
             f"multiple of --num-minibatches {args.num_minibatches}")
    tasks = ", ".join(f"{NAMESPACE}/{task}-v0" for task in TASKS)
    try:
        env = gym.make(args.env_id)  # also finds ids registered by a module: "my_module:MyEnv-v0"
    except (gym.error.Error, ImportError, TypeError, ValueError):
        fail(f"unknown env id {args.env_id!r}; valid: {tasks}, or any registered MiniGrid id "
             "(e.g. MiniGrid-DoorKey-8x8-v0)")
    base = env.unwrapped
    env.close()
    if not isinstance(base, MiniGridEnv):
        fail(f"{args.env_id} is not a MiniGrid environment ({type(base).__name__}): the student reads MiniGrid "
             f"grids; valid: {tasks}, or any registered MiniGrid id")


# ------------------------------------------------------------------------------------------ atomic files
# atomic_path and write_text live in teacher_wrappers.atomic (no torch: the teacher-alone runs of a sweep need them)
def save_torch(state: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# ------------------------------------------------------------------------------------------- checkpoints
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


# -------------------------------------------------------------------------------------------- evaluation
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
    """Plays one episode per seed (episode i on seeds[i]) on a vector env; returns the episodes' returns.

    The sub-envs play side by side and `choose_actions(obs)` picks the actions of all of them at once
    (one batched forward); a sub-env that finishes starts the next unplayed seed, and `new_episodes(mask)`
    hears which sub-envs start new episodes (all of them at first), so that a recurrent student forgets the
    episode that ended there. `stop()` is asked every step so that Ctrl-C ends a long evaluation
    (KeyboardInterrupt).

    `stop_loops=True` (a deterministic policy of the observation alone: a greedy feed-forward student) ends an
    episode where its observation repeats, if every sub-env allows it (`repeats_mean_loops`): there the same
    observation means the same state, so the policy is in a loop it never leaves, and the episode
    would end at its time limit with the return it has (these tasks reward success only, and success ends the
    episode). Same returns, fewer steps: a weak greedy student's evaluation no longer plays out its loops.
    """
    envs = gym.vector.SyncVectorEnv(list(env_fns[: len(seeds)]), autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    episode = np.arange(envs.num_envs)  # the episode each sub-env plays
    returns, running = np.zeros(len(seeds)), np.zeros(envs.num_envs)
    obs, _ = envs.reset(seed=[int(seeds[i]) for i in episode])
    next_episode, playing = envs.num_envs, np.ones(envs.num_envs, dtype=bool)
    new_episodes(playing.copy())
    loops = stop_loops and all(repeats_mean_loops(env) for env in envs.envs)
    seen: list[set] = [set() for _ in range(envs.num_envs)]  # each sub-env's observations this episode (loops)

    def looping(i: int) -> bool:  # sub-env i's observation was seen before in this episode
        key = b"".join(np.ascontiguousarray(value[i]).tobytes() for value in obs.values())
        repeated = key in seen[i]
        seen[i].add(key)
        return repeated

    for i in range(envs.num_envs if loops else 0):
        looping(i)
    while playing.any():
        if stop():
            envs.close()
            raise KeyboardInterrupt
        obs, reward, terminated, truncated, _ = envs.step(choose_actions(obs))
        running += reward
        finished = np.logical_or(terminated, truncated)
        if loops:
            finished |= np.array([not done and looping(i) for i, done in enumerate(finished)])
        for i in np.flatnonzero(finished & playing):
            returns[episode[i]], running[i] = running[i], 0.0
            episode[i], next_episode = next_episode, next_episode + 1
            playing[i] = episode[i] < len(seeds)
        if finished.any():  # sub-envs with no episode left restart too: a vector env steps only live episodes
            restart = [int(seeds[e]) if e < len(seeds) else None for e in episode]
            obs, _ = envs.reset(seed=restart, options={"reset_mask": finished})
            new_episodes(finished)
            for i in np.flatnonzero(finished) if loops else ():
                seen[i] = set()
                looping(i)
    envs.close()
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


def first_reaching(curve: dict, rate: float, window: int) -> int | None:
    """The index of the first point of a learning curve whose success rate reached `rate` over a full window
    of episodes (a handful of early episodes proves nothing); None if none did."""
    return next((i for i, (value, count) in enumerate(zip(curve["success_rate"], curve["episodes"]))
                 if value >= rate and count >= window), None)


# ----------------------------------------------------------------------------------------------- the run
class Run:
    """One training run: its folder, logs, checkpoints, signals and summary.

    Made before anything is seeded or built: it validates `--resume`'s checkpoint (one line and exit 2 if it
    does not fit), names the run, and from then on turns any exception into one line plus a checkpoint of the
    last finished iteration. The script then calls, in order: `start` (fresh or resumed), `record_step` every
    env step, `end_iteration` every iteration, `end_training` after the loop, `final_evaluation` around its
    evaluations, and `write_summary`.
    """

    def __init__(self, args: Any, script: str, curves: Sequence[str] = ()):
        self.args, self.script = args, script
        self.checkpoint = load_checkpoint(args.resume, args, script) if args.resume else None
        if self.checkpoint is not None:
            self.name = self.checkpoint["run_name"]
        else:
            default = f"{args.env_id.replace('/', '_')}__{args.exp_name}__{args.seed}__{int(time.time())}"
            self.name = args.run_name or default
        self.path = Path(args.run_dir) / self.name
        self.latest: dict | None = None  # the last finished iteration's checkpoint: nothing until training starts
        sys.excepthook = crash_handler(self.path, lambda: self.latest)
        self.greedy_envs = int(args.num_envs * args.greedy_fraction)  # the first ones act greedily
        self.global_step, self.start_iteration, self.wall_before = 0, 1, 0.0
        self.episode_returns = np.zeros(args.num_envs)
        self.episode_lengths = np.zeros(args.num_envs, dtype=int)
        self.recent: deque = deque(maxlen=args.success_window)  # (success, return) of the most recent episodes
        self.curve: dict[str, list] = {key: [] for key in ("frames", "wall_seconds", "success_rate",
                                                            "episodic_return", "episodes", *curves)}
        # greedy evaluations during training (--eval-points), the final one last: the deployed student's curve
        self.eval_curve: dict[str, list] = {"frames": [], "success_rate": [], "mean_return": []}
        self.interrupted = False
        self.state: dict = {}  # the script's own part of the checkpoint resumed from (see `start`)

    @property
    def resumed(self) -> bool:
        return self.checkpoint is not None

    def start(self, envs: gym.vector.VectorEnv, modules: dict[str, Any],
              state: Callable[[], dict] | None = None,
              eval_env: Callable[[], gym.Env] | None = None) -> tuple[dict, torch.Tensor]:
        """The first observation and done flags: a fresh start (envs reset on the seed) or, with --resume,
        exactly where the checkpoint stopped (`modules`' state dicts, random generators, episodes, the
        sub-environments and the teacher). `state()` gives the script's own part of every checkpoint (plain
        data, copied where it changes later); on resume the saved one is in `self.state`. Then opens TensorBoard
        (only now: a refused checkpoint leaves the run's events as they were), catches Ctrl-C and SIGTERM,
        and starts the clock and the progress bar. With `eval_env` (a factory of the student's env) the student
        (`modules["agent"]`) is evaluated greedily --eval-points times during training (see `end_iteration`)."""
        args, checkpoint = self.args, self.checkpoint
        self.envs, self.modules, self.state_fn = envs, modules, state or dict
        points = getattr(args, "eval_points", 0) if eval_env is not None else 0
        self.eval_env, self.eval_points = eval_env, points
        # evenly spaced; the last one is the final evaluation (write_summary)
        last = args.num_iterations
        self.eval_at = {round(k * last / points) for k in range(1, points)} - {0, last} if points else set()
        self.env_state = not args.capture_video  # video recorders cannot be saved
        if checkpoint is None:
            next_obs, _ = envs.reset(seed=args.seed)
            next_done = torch.zeros(args.num_envs)
        else:
            try:
                for key, module in modules.items():
                    module.load_state_dict(checkpoint[key])
            except (RuntimeError, ValueError, KeyError) as error:
                fail(f"checkpoint {args.resume} does not fit this network: {one_line(error)}")
            set_rng_state(checkpoint["rng"])
            self.global_step, self.start_iteration = checkpoint["global_step"], checkpoint["iteration"] + 1
            self.wall_before = checkpoint["wall_seconds"]
            self.episode_returns, self.episode_lengths = checkpoint["episode_returns"], checkpoint["episode_lengths"]
            self.recent.extend(checkpoint["recent"])
            self.curve = checkpoint["curve"]
            self.eval_curve = checkpoint.get("eval_curve", self.eval_curve)
            self.state = checkpoint["state"]
            if checkpoint["teacher"] is not None:  # its counters, answers and this episode's visits
                envs.load_teacher_state_dict(checkpoint["teacher"])
            if checkpoint["envs"] is not None:
                load_vector_env_state(envs, checkpoint["envs"])
                next_obs, next_done = checkpoint["next_obs"], checkpoint["next_done"]
            else:  # sub-envs that cannot be saved (video recorders): fresh episodes (done: a recurrent state restarts)
                next_obs, _ = envs.reset(seed=args.seed + self.start_iteration)
                next_done = torch.ones(args.num_envs)
        if args.track:
            import wandb

            wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                       config=vars(args), name=self.name, monitor_gym=True, save_code=True)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.path), purge_step=checkpoint["global_step"] if checkpoint else None)
        self.writer.add_text(
            "hyperparameters",
            "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in vars(args).items()])),
        )
        self.start_time = time.time()
        # what a crash before the first iteration ends leaves: the checkpoint resumed from, or the fresh start
        self.latest = checkpoint or self._checkpoint(self.start_iteration - 1, next_obs, next_done)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        self.bar = tqdm(total=args.num_iterations * args.batch_size, initial=self.global_step,
                        disable=not args.progress, unit="frames", dynamic_ncols=True)
        return next_obs, next_done

    def _on_signal(self, signum, frame) -> None:
        self.interrupted = True  # the iteration finishes, then a checkpoint is written

    def iterations(self) -> Iterator[int]:
        """The iterations left to train (from 1, or after the checkpoint's); stops early on Ctrl-C/SIGTERM."""
        for iteration in range(self.start_iteration, self.args.num_iterations + 1):
            if self.interrupted:
                return
            yield iteration

    def record_step(self, reward: np.ndarray, done: np.ndarray) -> list[tuple[int, bool]]:
        """Counts one vector step: episodes' returns and lengths, and for each finished episode its success
        (every task here rewards success and only success). Greedy envs' episodes are logged apart; the
        success rate follows the sampled policy. Returns (env index, success) of the finished episodes."""
        self.global_step += self.args.num_envs
        self.episode_returns += reward
        self.episode_lengths += 1
        finished = []
        for i in np.flatnonzero(done):
            success = bool(reward[i] > 0)
            if i < self.greedy_envs:
                self.writer.add_scalar("charts/greedy_episodic_return", self.episode_returns[i], self.global_step)
            else:
                self.recent.append((success, self.episode_returns[i]))
                self.writer.add_scalar("charts/episodic_return", self.episode_returns[i], self.global_step)
                self.writer.add_scalar("charts/episodic_length", self.episode_lengths[i], self.global_step)
            self.episode_returns[i], self.episode_lengths[i] = 0.0, 0
            finished.append((int(i), success))
        return finished

    @property
    def success_rate(self) -> float:
        return float(np.mean([s for s, _ in self.recent])) if self.recent else 0.0

    def mean_return(self, at_least: int = 1) -> float | None:
        """Mean return of the recent episodes (None while fewer than `at_least`; 0.0 with none at all)."""
        if len(self.recent) < at_least:
            return None if at_least > 1 else 0.0
        return float(np.mean([r for _, r in self.recent]))

    def end_iteration(self, iteration: int, next_obs: dict, next_done: torch.Tensor, curves: dict | None = None,
                      **postfix) -> None:
        """Logs the iteration (learning curve, success rate, SPS, progress bar with `postfix`) and keeps its
        checkpoint; writes it every --checkpoint-every iterations."""
        args, writer = self.args, self.writer
        success_rate, now = self.success_rate, time.time()
        self.curve["frames"].append(self.global_step)
        self.curve["wall_seconds"].append(self.wall_before + now - self.start_time)
        self.curve["success_rate"].append(success_rate)
        self.curve["episodic_return"].append(self.mean_return())
        self.curve["episodes"].append(len(self.recent))
        for key, value in (curves or {}).items():
            self.curve[key].append(value)
        if iteration in self.eval_at:
            self.evaluate_now()
        sps = int((self.global_step - (self.start_iteration - 1) * args.batch_size) / (now - self.start_time))
        writer.add_scalar("charts/success_rate", success_rate, self.global_step)
        writer.add_scalar("charts/SPS", sps, self.global_step)
        self.bar.update(args.batch_size)
        self.bar.set_postfix(SPS=sps, success=f"{success_rate:.2f}", **postfix)
        self.latest = self._checkpoint(iteration, next_obs, next_done)
        if args.checkpoint_every and iteration % args.checkpoint_every == 0:
            save_torch(self.latest, self.path / "checkpoints" / f"iter_{iteration:06d}.pt")
            save_torch(self.latest, self.path / "checkpoints" / "latest.pt")

    def _checkpoint(self, iteration: int, next_obs: dict, next_done: torch.Tensor) -> dict:
        """Everything needed to continue with the same results as an uninterrupted run."""
        envs = self.envs
        return {
            "format": CHECKPOINT_FORMAT, "script": self.script, "args": asdict(self.args), "run_name": self.name,
            "iteration": iteration, "global_step": self.global_step,
            **{key: module.state_dict() for key, module in self.modules.items()},
            "rng": rng_state(), "wall_seconds": self.wall_before + time.time() - self.start_time,
            "episode_returns": self.episode_returns.copy(), "episode_lengths": self.episode_lengths.copy(),
            "recent": list(self.recent), "curve": {key: list(value) for key, value in self.curve.items()},
            "eval_curve": {key: list(value) for key, value in self.eval_curve.items()},
            "envs": vector_env_state(envs) if self.env_state else None,
            "teacher": envs.teacher_state_dict() if hasattr(envs, "teacher_state_dict") else None,
            "next_obs": next_obs, "next_done": next_done.cpu(), "state": self.state_fn(),
        }

    @property
    def wall_seconds(self) -> float:
        return self.wall_before + time.time() - self.start_time

    def stop(self, message: str) -> None:
        print(message, file=sys.stderr)
        self.envs.close()
        self.writer.close()
        sys.exit(130)

    def end_training(self) -> None:
        """Writes the final checkpoint; on Ctrl-C/SIGTERM stops here (exit 130)."""
        self.bar.close()
        latest = self.path / "checkpoints" / "latest.pt"
        save_torch(self.latest, latest)
        if self.interrupted:
            self.stop(f"interrupted: checkpoint of iteration {self.latest['iteration']} written to {latest}; "
                      "continue with --resume")
        self.training_seconds = self.wall_seconds
        print(f"evaluating on {self.args.eval_episodes} fixed seeds ...", file=sys.stderr)

    def eval_seeds(self) -> np.ndarray:
        return self.args.eval_seed + np.arange(self.args.eval_episodes)

    def evaluate(self, agent, make_env: Callable[[], gym.Env], greedy: bool = True) -> tuple[float, float]:
        """The student on the evaluation seeds (--eval-episodes from --eval-seed, --eval-envs side by side)."""
        return evaluate(agent, [make_env] * self.args.eval_envs, self.eval_seeds(), greedy, self.args.eval_seed,
                        stop=lambda: self.interrupted)

    def evaluate_now(self) -> None:
        """A greedy evaluation during training, on the first --eval-envs evaluation seeds (one batch of episodes
        side by side): a point of the deployed student's curve (TensorBoard eval/curve_success_rate). It draws
        nothing from the training's random generators, so the training goes on as without it."""
        seeds = self.eval_seeds()[: self.args.eval_envs]
        success, mean_return = evaluate(self.modules["agent"], [self.eval_env] * len(seeds), seeds, True,
                                        self.args.eval_seed, stop=lambda: False)
        self.eval_curve["frames"].append(self.global_step)
        self.eval_curve["success_rate"].append(success)
        self.eval_curve["mean_return"].append(mean_return)
        self.writer.add_scalar("eval/curve_success_rate", success, self.global_step)

    @contextlib.contextmanager
    def final_evaluation(self) -> Iterator[None]:
        """Around the final evaluations: Ctrl-C stops them (exit 130, no summary; the model is saved)."""
        try:
            yield
        except KeyboardInterrupt:
            self.stop(f"interrupted during the final evaluation: no summary written; the trained model is in "
                      f"{self.path / 'checkpoints' / 'latest.pt'}")

    def write_summary(self, method: str, greedy: tuple[float, float], sampled: tuple[float, float],
                      **extra) -> dict:
        """summary.json (atomically) and the eval/ scalars; prints one line; closes the envs and TensorBoard."""
        args, writer, curve = self.args, self.writer, self.curve
        writer.add_scalar("eval/success_rate", greedy[0], self.global_step)
        writer.add_scalar("eval/mean_return", greedy[1], self.global_step)
        writer.add_scalar("eval/sampled_success_rate", sampled[0], self.global_step)
        hit = first_reaching(curve, 0.9, args.success_window)
        wall = self.training_seconds
        if self.eval_points:  # the final evaluation closes the deployed student's curve
            for key, value in zip(("frames", "success_rate", "mean_return"), (self.global_step, *greedy)):
                self.eval_curve[key].append(value)
        summary = {
            "env_id": args.env_id, "method": method, "seed": args.seed, "frames": self.global_step,
            "wall_seconds": wall, "sps": self.global_step / wall if wall else 0.0,
            "eval_success_rate": greedy[0], "eval_mean_return": greedy[1], "eval_episodes": args.eval_episodes,
            "eval_sampled_success_rate": sampled[0], "eval_sampled_mean_return": sampled[1],
            "frames_to_90": None if hit is None else curve["frames"][hit],
            "wall_seconds_to_90": None if hit is None else curve["wall_seconds"][hit],
            **extra, "learning_curve": curve, "eval_curve": self.eval_curve, "args": asdict(args),
        }
        write_text(self.path / "summary.json", json.dumps(summary, indent=1))
        print(f"{self.name}: eval success {greedy[0]:.2f} greedy, {sampled[0]:.2f} sampled, frames to 90% "
              f"{summary['frames_to_90']}, {summary['sps']:.0f} SPS; summary in {self.path / 'summary.json'}")
        self.envs.close()
        writer.close()
        return summary
