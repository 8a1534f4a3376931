# PPO with an LLM policy teacher (Zhou et al., 2023, arXiv 2311.13373), in CleanRL's single-file style.
# The student acts; the teacher only supplies targets. Loss = PPO + lambda_t * KL(teacher || student)
# on the states the student visits, with lambda_t decaying so that reward takes over.
#
#   python algorithms/ppo_teacher.py --env-id TeacherWrappers/SimpleDoorKey-v0 --planner recorded
import copy
import functools
import json
import math
import os
import pickle
import random
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small networks on CPU: one thread is several times faster

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from minigrid.minigrid_env import MiniGridEnv
from torch.distributions import Distribution
from torch.distributions.categorical import Categorical
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

import teacher_wrappers
from teacher_wrappers import MemoryMapObservation, TeacherWrapper
from teacher_wrappers.episodic import RevisitCount
from teacher_wrappers.planners import PLANNERS
from teacher_wrappers.wrapper import make_teacher_vector_env

SCHEDULES = ("reference", "linear", "adaptive")
DISTILL_FROM = ("on-policy", "successes", "demos")


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, cuda will be enabled when available (small networks run faster on the CPU)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "teacher-wrappers"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to capture videos of the agent performances (check out `videos` folder)"""
    run_dir: str = "runs"
    """folder that holds runs/<run_name>: TensorBoard events, checkpoints, summary.json"""
    run_name: str | None = None
    """name of the run folder (default: <env>__<exp_name>__<seed>__<time>)"""

    # Algorithm specific arguments
    env_id: str = "TeacherWrappers/SimpleDoorKey-v0"
    """the id of the environment (a TeacherWrappers task or a MiniGrid id)"""
    total_timesteps: int = 150_000
    """total timesteps of the experiments"""
    learning_rate: float = 5e-4
    """the learning rate of the optimizer"""
    num_envs: int = 16
    """the number of parallel game environments"""
    async_envs: bool = False
    """run the environments in worker processes, one per usable core (teacher_wrappers.vector.make_vector_env), instead of in this process"""
    num_steps: int = 32
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: int = 4
    """the number of mini-batches"""
    update_epochs: int = 3
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """Toggles advantages normalization"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function"""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: float | None = None
    """the target KL divergence threshold"""

    # Teacher specific arguments
    planner: str = "recorded"
    """the teacher's planner: recorded, rules, hf or openai (see teacher_wrappers.planners)"""
    model: str | None = None
    """LLM planners: the model (hf: folder, cached hub id, GGUF file or 'smollm2'; openai: model name)"""
    base_url: str | None = None
    """openai planner: the server's base URL, e.g. http://localhost:8000/v1"""
    recorded_path: str | None = None
    """recorded planner: a plan table file (default: the tables shipped with the package)"""
    planner_mode: str | None = None
    """hf/openai planners: 'sample' n answers or 'score' the admissible plans"""
    schedule: str = "adaptive"
    """how lambda, the weight of the distillation loss, decays: adaptive, reference or linear"""
    lambda_start: float = 10.0
    """lambda at the first iteration"""
    lambda_decay: float = 0.005
    """reference schedule: lambda falls by this much per iteration"""
    lambda_floor: float = 0.1
    """reference schedule: lambda never falls below this while the teacher is on"""
    teacher_off_iteration: int = 1000
    """reference schedule: the teacher is switched off (lambda = 0) from this iteration on"""
    linear_frames: int = 100_000
    """linear and adaptive schedules: lambda reaches 0 after this many frames"""
    teacher_eval_episodes: int = 20
    """adaptive schedule: episodes of the teacher acting alone, to measure its return"""
    distill_from: str = "successes"
    """what the student imitates: 'on-policy', the teacher's suggestions on every state of the rollout;
    'successes', the teacher's suggestions on states of the student's own successful episodes (a replay buffer);
    'demos', the actions taken in successful episodes, the teacher's own (acting alone before training) and then
    the student's"""
    demo_episodes: int = 200
    """distill_from demos: episodes of the teacher acting alone before training; its successful ones seed the
    buffer (these env steps are not counted in the frame budget; the summary reports them)"""
    success_buffer_size: int = 20_000
    """distill_from successes: states kept (the oldest go first)"""
    success_buffer_min: int = 1_024
    """distill_from successes: on-policy states are used until the buffer holds this many"""
    q_filter: bool = False
    """trust the teacher only where a learned Q agrees: its actions valued below the student's own choice (by more
    than q_filter_margin) are dropped from the target (after Nair et al. 2018's Q-filter)"""
    q_filter_margin: float = 0.05
    """q_filter: how much lower (in return) than the student's choice a suggestion may be valued and still be trusted"""

    greedy_fraction: float = 0.125
    """this fraction of the environments (rounded down: 2 of 16) act greedily (argmax) in the rollouts: where the
    argmax loops, PPO sees it and pushes it down, which sampled rollouts rarely show (their episodes are left out
    of charts/success_rate)"""

    # The student's network
    visits: bool = False
    """show the student how often it has seen the current memory map this episode (teacher_wrappers.RevisitCount),
    so that a greedy policy can notice that it is going round in circles"""

    # Logging, evaluation and checkpoints
    success_window: int = 100
    """the success rate and return are averaged over the most recent episodes, this many"""
    eval_episodes: int = 100
    """evaluation episodes at the end (greedy, sampled, and the teacher alone), on fixed seeds"""
    eval_envs: int = 32
    """evaluation episodes played side by side (one batched forward per step)"""
    eval_seed: int = 1_000_000
    """first seed of the evaluation episodes (episode i uses eval_seed + i)"""
    checkpoint_every: int = 50
    """write a checkpoint every this many iterations (0: only at the end and on Ctrl-C)"""
    resume: str | None = None
    """path of a checkpoint to continue from; the run goes on in that checkpoint's run folder. The checkpoint
    must come from this script with the same settings (see --resume-allow-budget-change)"""
    resume_allow_budget_change: bool = False
    """with --resume: let --total-timesteps differ from the checkpoint's (the learning rate anneals to the new budget)"""
    progress: bool = True
    """show a progress bar with SPS and success rate"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


SCRIPT = os.path.basename(__file__)
# Settings that do not change the training: a resumed run may set them anew.
RESUME_FREE = {"resume", "resume_allow_budget_change", "progress", "run_name", "run_dir", "track", "wandb_project_name",
               "wandb_entity", "checkpoint_every", "eval_episodes", "eval_seed",
               "batch_size", "minibatch_size", "num_iterations"}  # the last three follow from the others


def fail(message, code=2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def one_line(error):
    return " ".join(str(error).split())[:500] or type(error).__name__


def validate(args):
    if args.planner not in PLANNERS:
        fail(f"unknown planner {args.planner!r}; valid planners: {', '.join(PLANNERS)}")
    if args.schedule not in SCHEDULES:
        fail(f"unknown schedule {args.schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
    if args.distill_from not in DISTILL_FROM:
        fail(f"unknown --distill-from {args.distill_from!r}; valid: {', '.join(DISTILL_FROM)}")
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
    tasks = ", ".join(f"{teacher_wrappers.NAMESPACE}/{task}-v0" for task in teacher_wrappers.TASKS)
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


def checkpoint_differences(saved, args):
    """'--name: here (checkpoint: there)' for every setting of `args` that changes the training and differs."""
    current = asdict(args)
    free = RESUME_FREE | ({"total_timesteps"} if args.resume_allow_budget_change else set())
    return [f"--{key.replace('_', '-')} {current.get(key, '(absent)')} (checkpoint: {saved.get(key, '(absent)')})"
            for key in sorted(set(saved) | set(current)) if key not in free and saved.get(key) != current.get(key)]


def load_checkpoint(path, args):
    """The checkpoint at `path` if this script wrote it for a run with these settings; else a one-line error.

    Called before anything of the run is touched (TensorBoard's purge_step hides the events past it).
    """
    try:
        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
    except FileNotFoundError:
        fail(f"checkpoint {path} does not exist")
    except Exception as error:  # noqa: BLE001  (empty, truncated, random bytes, a folder: whatever torch says)
        fail(f"cannot read checkpoint {path}: {type(error).__name__}: {one_line(error)}")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("args"), dict) or "script" not in checkpoint:
        fail(f"{path} is not a checkpoint of {SCRIPT} (it records no script and settings)")
    if checkpoint["script"] != SCRIPT:
        fail(f"checkpoint {path} was written by {checkpoint['script']}, not {SCRIPT}; "
             f"resume it with algorithms/{checkpoint['script']}")
    differences = checkpoint_differences(checkpoint["args"], args)
    if differences:
        fail(f"checkpoint {path} was written with other settings: {'; '.join(differences)}; "
             "resume with the checkpoint's settings")
    return checkpoint


def crash_handler(run_path, latest):
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
                save_atomically(checkpoint, path)
                saved = f"checkpoint of iteration {checkpoint['iteration']} written to {path}; continue with --resume"
        except Exception as save_error:  # noqa: BLE001  (say both, in one line)
            saved = f"no checkpoint written ({type(save_error).__name__}: {one_line(save_error)})"
        print(f"error: {kind.__name__}: {one_line(error)} (traceback in {log}); {saved}", file=sys.stderr)

    return hook


def write_atomically(text, path):
    """A reader sees the old file or the new one, never half of one (a killed run, a full disk)."""
    tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def planner_kwargs(args):
    """The planner's options given on the command line (LLM planners only)."""
    options = {"model": args.model, "base_url": args.base_url, "mode": args.planner_mode, "path": args.recorded_path}
    return {key: value for key, value in options.items() if value is not None}


def restore_teacher(teacher, checkpoint):
    """The teacher's counters and answers as the checkpoint left them: a resumed run's teacher_stats count the
    whole run, and texts answered before are not asked again."""
    for key, value in checkpoint["teacher_stats"].items():
        if hasattr(teacher.stats, key):
            setattr(teacher.stats, key, value)
    teacher.memo.update(checkpoint["teacher_memo"])
    teacher.planner.queries = checkpoint["planner_queries"]


def make_env(env_id, idx, capture_video, run_name, visits=False):
    def thunk():
        if capture_video and idx == 0:
            env = gym.make(env_id, render_mode="rgb_array")
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        else:
            env = gym.make(env_id)
        try:
            env.get_wrapper_attr("memory_map")
        except AttributeError:
            env = MemoryMapObservation(env)  # plain MiniGrid envs: the student sees the memory map too
        return RevisitCount(env) if visits else env

    return thunk


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Egocentric(nn.Module):
    """Re-centres the memory map on the agent and turns it so that the agent faces up.

    The student still sees the whole map; in its own frame "the key is two cells ahead" looks the
    same wherever the agent stands, which makes the teacher's policy far quicker to learn. One gather
    per batch: each heading has a precomputed table of offsets into the zero-padded (unseen) map.
    """

    DIRS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])  # MiniGrid headings: east, south, west, north

    def __init__(self, width, height):
        super().__init__()
        self.size = max(width, height)
        self.padded_height = height + 2 * (self.size - 1)
        span = np.arange(2 * self.size - 1) - (self.size - 1)
        right_steps, back_steps = np.meshgrid(span, span, indexing="ij")  # output x: right, output y: back
        tables = []
        for forward in self.DIRS:
            right = np.array((-forward[1], forward[0]))
            dx = right_steps * right[0] - back_steps * forward[0]
            dy = right_steps * right[1] - back_steps * forward[1]
            tables.append((dx * self.padded_height + dy).ravel())
        self.register_buffer("offsets", torch.tensor(np.stack(tables)))

    def forward(self, x):
        batch, width, height, channels = x.shape
        pad = self.size - 1
        agent_channel = x[..., 3].reshape(batch, -1)
        position = agent_channel.argmax(1)  # channel 3 is non-zero only at the agent's cell
        heading = agent_channel.gather(1, position[:, None]).squeeze(1).long() - 1
        centre = (position // height + pad) * self.padded_height + position % height + pad
        padded = F.pad(x, (0, 0, pad, pad + self.size - height, pad, pad + self.size - width)).reshape(batch, -1, channels)
        index = (centre[:, None] + self.offsets[heading])[..., None].expand(-1, -1, channels)
        side = 2 * self.size - 1
        return padded.gather(1, index.long()).view(batch, side, side, channels)


MISSION_FIELDS, MISSION_VALUES = 12, 16  # the mission vector's instruction fields, each a small index


def student_obs(obs):
    """The network's input: the memory map, plus a fifth channel filled with the revisit count if observed,
    plus one extra column x = width holding the mission vector (zero-padded) if observed (plain MiniGrid
    and BabyAI envs), so that the rollout buffers keep one uint8 array per step. Single or batched."""
    image = obs["image"]
    if "revisits" in obs:
        counts = np.broadcast_to(obs["revisits"][..., None, None, :], image.shape[:-1] + (1,))
        image = np.concatenate([image, counts], axis=-1)
    if "mission" in obs:
        mission = np.asarray(obs["mission"], dtype=image.dtype)
        column = np.zeros(image.shape[:-3] + (1,) + image.shape[-2:], dtype=image.dtype)
        column.reshape(image.shape[:-3] + (-1,))[..., :mission.shape[-1]] = mission
        image = np.concatenate([image, column], axis=-3)
    return image


class Agent(nn.Module):
    """A small CNN over the one-hot egocentric memory map (object, colour, state, heading per cell); the log of
    the revisit count joins the CNN's features when the observation has it.

    With `mission=True` the input carries the mission in an extra column (see `student_obs`): its
    instruction fields (action, object type, colour, location word, per instruction) are one-hot
    encoded, embedded and concatenated to the CNN features. (The start pose that location words refer
    to is not used: it is in absolute coordinates, the CNN's view is egocentric.)
    """

    # MiniGrid has 11 object types, 6 colours, 3 door states; channel 3 holds heading + 1 (0: no agent).
    SIZES = (11, 6, 3, 5)

    def __init__(self, obs_shape, n_actions, q_head=False, mission=False):
        super().__init__()
        width, height, input_channels = obs_shape
        self.counts = input_channels > len(self.SIZES)
        self.mission = mission
        if mission:
            width -= 1  # the last column is the mission
            self.mission_embedding = nn.Sequential(layer_init(nn.Linear(MISSION_FIELDS * MISSION_VALUES, 32)),
                                                   nn.ReLU())
        self.egocentric = Egocentric(width, height)
        self.register_buffer("offsets", torch.tensor(np.cumsum((0,) + self.SIZES[:-1])))
        channels, side = sum(self.SIZES), 2 * max(width, height) - 1
        self.encoder = nn.Sequential(
            layer_init(nn.Conv2d(channels, 16, 2, stride=2, padding=1)), nn.ReLU(),
            layer_init(nn.Conv2d(16, 32, 3, stride=2, padding=1)), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            features = self.encoder(torch.zeros(1, channels, side, side)).shape[1]
        self.trunk = nn.Sequential(layer_init(nn.Linear(features + self.counts + 32 * mission, 128)), nn.ReLU())
        self.actor = layer_init(nn.Linear(128, n_actions), std=0.01)
        self.critic = layer_init(nn.Linear(128, 1), std=1)
        # Q(s, a) for every action, regressed on the returns of the actions taken: judges the teacher's suggestions.
        # It starts near 0 everywhere, so that the Q-filter trusts every suggestion until Q has learned something.
        self.q = layer_init(nn.Linear(128, n_actions), std=0.01) if q_head else None

    def features(self, x):
        if self.mission:
            x, mission = x[:, :-1], x[:, -1].reshape(len(x), -1)[:, :MISSION_FIELDS].long()
        cells = self.egocentric(x[..., : len(self.SIZES)]).long() + self.offsets
        planes = torch.zeros(cells.shape[:3] + (sum(self.SIZES),), device=x.device).scatter_(3, cells, 1.0)
        features = self.encoder(planes.permute(0, 3, 1, 2))
        if self.counts:  # every cell of the fifth channel holds the count
            features = torch.cat([features, torch.log1p(x[:, 0, 0, len(self.SIZES):].float()) / math.log(256)], 1)
        if self.mission:
            fields = torch.zeros(mission.shape + (MISSION_VALUES,), device=x.device).scatter_(
                2, mission.clamp(max=MISSION_VALUES - 1)[..., None], 1.0)
            features = torch.cat([features, self.mission_embedding(fields.flatten(1))], 1)
        return self.trunk(features)

    def get_value(self, x):
        return self.critic(self.features(x))

    def get_action_and_value(self, x, action=None):
        hidden = self.features(x)
        logits = self.actor(hidden)
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(hidden), logits, hidden


class SuccessBuffer:
    """States of the student's own successful episodes with the teacher's suggestions there (a ring buffer).

    Imitating the teacher on every visited state also teaches its mistakes (an LLM plan that drops the right
    key for the wrong one); on states that led to success its advice was, at least, not fatal.
    """

    def __init__(self, capacity, obs_shape, n_actions):
        self.obs = np.zeros((capacity,) + obs_shape, dtype=np.uint8)
        self.teacher = np.zeros((capacity, n_actions), dtype=np.float32)
        self.size, self.next = 0, 0

    def add(self, obs, teacher):
        for start in range(0, len(obs), len(self.obs)):
            chunk = slice(start, start + len(self.obs))
            count = len(obs[chunk])
            index = (self.next + np.arange(count)) % len(self.obs)
            self.obs[index], self.teacher[index] = obs[chunk], teacher[chunk]
            self.next, self.size = (self.next + count) % len(self.obs), min(self.size + count, len(self.obs))

    def sample(self, count, device):
        index = torch.randint(self.size, (count,)).numpy()
        return torch.as_tensor(self.obs[index], device=device), torch.as_tensor(self.teacher[index], device=device)


def distillation_target(teacher, logits, q, margin):
    """The teacher's suggestion; with a Q-filter, only its actions valued about as high as the student's choice."""
    if q is None:
        return teacher
    q = q.detach()
    trusted = q >= q.gather(1, logits.detach().argmax(-1, keepdim=True)) - margin
    target = teacher * trusted
    return target / target.sum(-1, keepdim=True).clamp_min(1e-8)  # a row with nothing trusted is all 0: no loss


def make_teacher_env(args, planner):
    """One environment with the teacher acting in it (its suggestions in obs["teacher_probs"])."""
    return TeacherWrapper(make_env(args.env_id, 1, False, "", args.visits)(), planner=planner)


def teacher_demos(args, planner):
    """(student observations, actions taken) of the teacher's successful episodes acting alone, and the env steps
    it took. Imitating what the teacher did when it succeeded, not all it suggests, leaves its mistakes out."""
    env = make_teacher_env(args, planner)
    rng = np.random.default_rng(args.seed)
    states, actions, steps = [], [], 0
    for episode in range(args.demo_episodes):
        obs, _ = env.reset(seed=args.eval_seed + 20_000 + episode)  # clear of the evaluation seeds
        trajectory, done = [], False
        while not done:
            probs = obs["teacher_probs"].astype(np.float64)
            action = int(rng.choice(len(probs), p=probs / probs.sum()))
            trajectory.append((student_obs(obs), action))
            obs, reward, terminated, truncated, _ = env.step(action)
            done, steps = terminated or truncated, steps + 1
        if reward > 0:
            states += [state for state, _ in trajectory]
            actions += [action for _, action in trajectory]
    env.close()
    return np.array(states, dtype=np.uint8), np.array(actions, dtype=np.int64), steps


def teacher_alone_returns(args, planner, seeds, stop=lambda: False):
    """Returns of the teacher acting alone (actions sampled from its suggestions), one episode per seed."""
    rng = np.random.default_rng(args.seed)

    def choose_actions(obs):
        cumulative = np.cumsum(obs["teacher_probs"], axis=1)
        draws = rng.random(len(cumulative))[:, None] * cumulative[:, -1:]
        return np.minimum((cumulative <= draws).sum(1), cumulative.shape[1] - 1)

    env_fns = [functools.partial(make_teacher_env, args, planner)] * args.eval_envs
    return play_episodes(env_fns, seeds, choose_actions, stop)


def distillation_weight(args, iteration, global_step, recent_return, teacher_return):
    """lambda_t for the iteration about to be trained (iterations count from 1)."""
    if args.schedule == "reference":
        if iteration >= args.teacher_off_iteration:
            return 0.0
        return max(args.lambda_start - args.lambda_decay * (iteration - 1), args.lambda_floor)
    if args.schedule == "linear":
        return args.lambda_start * max(0.0, 1.0 - global_step / args.linear_frames)
    # adaptive: full weight while the student trails the teacher, none once it matches it; and, as the
    # linear schedule, none after linear_frames, so that reward takes over from a teacher that the
    # student cannot match by imitation (a looping LLM plan, say)
    deadline = max(0.0, 1.0 - global_step / args.linear_frames)
    if recent_return is None or teacher_return <= 0:
        return args.lambda_start * deadline
    return args.lambda_start * deadline * float(np.clip(1.0 - recent_return / teacher_return, 0.0, 1.0))


def play_episodes(env_fns, seeds, choose_actions, stop=lambda: False):
    """Plays one episode per seed (episode i on seeds[i]) on a vector env; returns the episodes' returns.

    The sub-envs play side by side and `choose_actions(obs)` picks the actions of all of them at once
    (one batched forward); a sub-env that finishes starts the next unplayed seed. `stop()` is asked
    every step so that Ctrl-C ends a long evaluation.
    """
    envs = gym.vector.SyncVectorEnv(env_fns[: len(seeds)], autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    episode = np.arange(envs.num_envs)  # the episode each sub-env plays
    returns, running = np.zeros(len(seeds)), np.zeros(envs.num_envs)
    obs, _ = envs.reset(seed=[int(seeds[i]) for i in episode])
    next_episode, playing = envs.num_envs, np.ones(envs.num_envs, dtype=bool)
    while playing.any():
        if stop():
            envs.close()
            raise KeyboardInterrupt
        obs, reward, terminated, truncated, _ = envs.step(choose_actions(obs))
        running += reward
        finished = np.logical_or(terminated, truncated)
        for i in np.flatnonzero(finished & playing):
            returns[episode[i]], running[i] = running[i], 0.0
            episode[i], next_episode = next_episode, next_episode + 1
            playing[i] = episode[i] < len(seeds)
        if finished.any():  # sub-envs with no episode left restart too: a vector env steps only live episodes
            restart = [int(seeds[e]) if e < len(seeds) else None for e in episode]
            obs, _ = envs.reset(seed=restart, options={"reset_mask": finished})
    envs.close()
    return returns


def evaluate(agent, args, device, greedy=True, stop=lambda: False):
    """The policy on fixed seeds (episode i on eval_seed + i), greedy (argmax) or sampled:
    (success rate, mean return)."""
    generator = torch.Generator().manual_seed(args.eval_seed)  # leaves the training RNG untouched

    def choose_actions(obs):
        with torch.no_grad():
            logits = agent.actor(agent.features(torch.as_tensor(student_obs(obs), device=device)))
        if greedy:
            return logits.argmax(-1).cpu().numpy()
        return torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=generator).squeeze(1).numpy()

    env_fns = [make_env(args.env_id, 1, False, "", args.visits) for _ in range(args.eval_envs)]
    returns = play_episodes(env_fns, args.eval_seed + np.arange(args.eval_episodes), choose_actions, stop)
    return float(np.mean(returns > 0)), float(np.mean(returns))


def save_atomically(state, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    args = tyro.cli(Args)
    validate(args)
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    greedy_envs = int(args.num_envs * args.greedy_fraction)  # the first ones act greedily
    checkpoint = load_checkpoint(args.resume, args) if args.resume else None
    if checkpoint is not None:
        run_name = checkpoint["run_name"]
    else:
        run_name = args.run_name or f"{args.env_id.replace('/', '_')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_path = Path(args.run_dir) / run_name
    last_checkpoint = None  # nothing to keep until the training starts
    sys.excepthook = crash_handler(run_path, lambda: last_checkpoint)  # any exception from here on: one line

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    Distribution.set_default_validate_args(False)  # argument checks cost more than the tiny network
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env setup: Gymnasium 1.x with same-step autoreset, so the obs after a done starts the next episode
    # (with --async-envs, a planner that costs no LLM call runs in every sub-env process: see make_teacher_vector_env)
    env_fns = [make_env(args.env_id, i, args.capture_video, run_name, args.visits) for i in range(args.num_envs)]
    try:
        envs = make_teacher_vector_env(env_fns, planner=args.planner, planner_kwargs=planner_kwargs(args),
                                       asynchronous=args.async_envs,
                                       autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    except (ValueError, TypeError, ConnectionError, OSError, RuntimeError) as error:
        fail(f"cannot build the {args.planner!r} teacher: {error}")
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"
    obs_shape = student_obs({key: space.sample() for key, space in envs.single_observation_space.items()}).shape
    n_actions = int(envs.single_action_space.n)

    agent = Agent(obs_shape, n_actions, q_head=args.q_filter,
                  mission="mission" in envs.single_observation_space.spaces).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    teacher_return = 0.0
    if args.schedule == "adaptive":
        seeds = args.eval_seed + 10_000 + np.arange(args.teacher_eval_episodes)
        teacher_return = float(np.mean(teacher_alone_returns(args, envs.teacher.planner, seeds)))

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape, dtype=torch.uint8).to(device)
    teacher_probs = torch.zeros((args.num_steps, args.num_envs, n_actions)).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs)).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    successes = None if args.distill_from == "on-policy" else SuccessBuffer(args.success_buffer_size, obs_shape,
                                                                             n_actions)
    episode_states = [[] for _ in range(args.num_envs)]  # (obs, imitation target) of each env's current episode
    demo_frames = 0
    if args.distill_from == "demos" and checkpoint is None:
        demo_states, demo_actions, demo_frames = teacher_demos(args, envs.teacher.planner)
        successes.add(demo_states, np.eye(n_actions, dtype=np.float32)[demo_actions])
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)

    # TRY NOT TO MODIFY: start the game
    global_step, start_iteration, wall_before = 0, 1, 0.0
    episode_returns, episode_lengths = np.zeros(args.num_envs), np.zeros(args.num_envs, dtype=int)
    recent = deque(maxlen=args.success_window)  # (success, return) of the most recent episodes
    curve = {"frames": [], "wall_seconds": [], "success_rate": [], "episodic_return": [], "episodes": [], "lambda": [],
             "llm_calls": []}
    if checkpoint is None:
        next_obs_dict, _ = envs.reset(seed=args.seed)
    else:  # continue exactly where the checkpoint stopped
        try:
            agent.load_state_dict(checkpoint["agent"])
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            fail(f"checkpoint {args.resume} does not fit this network: {one_line(error)}")
        torch.set_rng_state(checkpoint["torch_rng"])
        np.random.set_state(checkpoint["numpy_rng"])
        random.setstate(checkpoint["python_rng"])
        global_step, start_iteration = checkpoint["global_step"], checkpoint["iteration"] + 1
        wall_before, teacher_return = checkpoint["wall_seconds"], checkpoint["teacher_return"]
        episode_returns, episode_lengths = checkpoint["episode_returns"], checkpoint["episode_lengths"]
        recent.extend(checkpoint["recent"])
        curve = checkpoint["curve"]
        if successes is not None:
            vars(successes).update(checkpoint["successes"])
        episode_states, demo_frames = checkpoint["episode_states"], checkpoint["demo_frames"]
        restore_teacher(envs.teacher, checkpoint)
        if checkpoint["envs"] is not None and not args.async_envs:
            envs.env.envs = pickle.loads(checkpoint["envs"])
            envs.restore_visits(checkpoint["teacher_visits"])
            next_obs_dict = checkpoint["next_obs"]
        else:  # async sub-envs (other processes) and video recorders cannot be saved: fresh episodes
            next_obs_dict, _ = envs.reset(seed=args.seed + start_iteration)
    next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
    next_teacher = torch.as_tensor(next_obs_dict["teacher_probs"]).to(device)
    next_done = torch.zeros(args.num_envs).to(device) if checkpoint is None else checkpoint["next_done"].to(device)

    # only now: a checkpoint refused above leaves the run's TensorBoard events as they were
    if args.track:
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                   config=vars(args), name=run_name, monitor_gym=True, save_code=True)
    writer = SummaryWriter(str(run_path), purge_step=checkpoint["global_step"] if checkpoint else None)
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in vars(args).items()])),
    )

    def make_checkpoint(iteration):
        """Everything needed to continue with the same results as an uninterrupted run."""
        return {
            "script": SCRIPT, "args": asdict(args), "run_name": run_name, "iteration": iteration, "global_step": global_step,
            "agent": agent.state_dict(), "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
            "wall_seconds": wall_before + time.time() - start_time, "teacher_return": teacher_return,
            "episode_returns": episode_returns.copy(), "episode_lengths": episode_lengths.copy(),
            "recent": list(recent), "curve": {key: list(value) for key, value in curve.items()},
            "envs": None if args.async_envs or args.capture_video else pickle.dumps(envs.env.envs),
            "teacher_visits": envs.visits_state(), "next_obs": next_obs_dict, "next_done": next_done.cpu(),
            # copies: the buffer and the episodes change during the next iteration (plain data, loadable anywhere)
            "successes": None if successes is None else copy.deepcopy(vars(successes)),
            "episode_states": [list(states) for states in episode_states], "demo_frames": demo_frames,
            "teacher_stats": asdict(envs.teacher.stats), "teacher_memo": dict(envs.teacher.memo),
            "planner_queries": envs.teacher.planner.queries,
        }

    start_time = time.time()
    last_checkpoint = make_checkpoint(start_iteration - 1)
    interrupted = False

    def on_interrupt(signum, frame):
        global interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, on_interrupt)
    bar = tqdm(total=args.num_iterations * args.batch_size, initial=global_step, disable=not args.progress,
               unit="frames", dynamic_ncols=True)
    for iteration in range(start_iteration, args.num_iterations + 1):
        if interrupted:
            break
        recent_return = float(np.mean([r for _, r in recent])) if len(recent) >= 10 else None
        lam = distillation_weight(args, iteration, global_step, recent_return, teacher_return)
        envs.teacher_enabled = lam > 0  # a switched-off teacher costs nothing
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            lrnow = frac * args.learning_rate
            optimizer.param_groups[0]["lr"] = lrnow

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            teacher_probs[step] = next_teacher
            dones[step] = next_done

            # ALGO LOGIC: action logic
            with torch.inference_mode():
                action, logprob, _, value, logits, _ = agent.get_action_and_value(next_obs)
                if greedy_envs:
                    action[: greedy_envs] = logits[: greedy_envs].argmax(-1)
                    logprob = Categorical(logits=logits).log_prob(action)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs_dict, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done_np = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            if successes is not None and lam > 0:
                # the target: the teacher's suggestion there, or (demos) the action the student took
                targets = F.one_hot(action, n_actions).float() if args.distill_from == "demos" else teacher_probs[step]
                # one copy per step (the rollout storage is overwritten later); each env keeps its row
                step_obs, step_targets = obs[step].cpu().numpy().copy(), targets.cpu().numpy().copy()
                for i in range(args.num_envs):
                    episode_states[i].append((step_obs[i], step_targets[i]))
            next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
            next_teacher = torch.as_tensor(next_obs_dict["teacher_probs"]).to(device)
            next_done = torch.Tensor(next_done_np).to(device)

            episode_returns += reward
            episode_lengths += 1
            for i in np.flatnonzero(next_done_np):
                success = bool(reward[i] > 0)  # every task here rewards success and only success
                if i < greedy_envs:
                    writer.add_scalar("charts/greedy_episodic_return", episode_returns[i], global_step)
                else:  # the success rate and the adaptive schedule follow the sampled policy, as without greedy envs
                    recent.append((success, episode_returns[i]))
                    writer.add_scalar("charts/episodic_return", episode_returns[i], global_step)
                    writer.add_scalar("charts/episodic_length", episode_lengths[i], global_step)
                if success and episode_states[i]:
                    states, suggestions = zip(*episode_states[i])
                    successes.add(np.stack(states), np.stack(suggestions))
                episode_states[i] = []
                episode_returns[i], episode_lengths[i] = 0.0, 0

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards).to(device)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        # flatten the batch
        b_obs = obs.reshape((-1,) + obs_shape)
        b_teacher = teacher_probs.reshape(-1, n_actions)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # Optimizing the policy and value network
        b_inds = np.arange(args.batch_size)
        clipfracs, teacher_kls, agreements = [], [], []
        for epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                end = start + args.minibatch_size
                mb_inds = b_inds[start:end]

                _, newlogprob, entropy, newvalue, logits, hidden = agent.get_action_and_value(
                    b_obs[mb_inds], b_actions.long()[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # Policy loss
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # Value loss
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds],
                        -args.clip_coef,
                        args.clip_coef,
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
                    v_loss = 0.5 * v_loss_max.mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                # Q(s, a_taken) regressed on the return, for the Q-filter
                q_loss = torch.zeros((), device=device)
                if agent.q is not None:
                    q_taken = agent.q(hidden).gather(1, b_actions.long()[mb_inds, None]).squeeze(1)
                    q_loss = 0.5 * ((q_taken - b_returns[mb_inds]) ** 2).mean()

                # Distillation: KL(teacher || student) on the states the student visited, or on states of its own
                # successful episodes once the buffer holds enough of them
                mb_teacher, kl_hidden, kl_logits = b_teacher[mb_inds], hidden, logits
                if lam > 0 and successes is not None and successes.size >= args.success_buffer_min:
                    kl_obs, mb_teacher = successes.sample(args.minibatch_size, device)
                    kl_hidden = agent.features(kl_obs)
                    kl_logits = agent.actor(kl_hidden)
                target = distillation_target(mb_teacher, kl_logits, None if agent.q is None else agent.q(kl_hidden),
                                             args.q_filter_margin)
                log_student = F.log_softmax(kl_logits, dim=-1)
                teacher_kl = (torch.xlogy(target, target) - target * log_student).sum(-1).mean()
                with torch.no_grad():
                    teacher_kls.append(teacher_kl.item())
                    agreements.append((kl_logits.argmax(-1) == mb_teacher.argmax(-1)).float().mean().item())

                entropy_loss = entropy.mean()
                loss = (pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef + q_loss * args.vf_coef
                        + lam * teacher_kl)

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
        agreement = float(np.mean(agreements))  # student argmax == teacher argmax, over the iteration's updates

        success_rate = float(np.mean([s for s, _ in recent])) if recent else 0.0
        mean_return = float(np.mean([r for _, r in recent])) if recent else 0.0
        curve["frames"].append(global_step)
        curve["wall_seconds"].append(wall_before + time.time() - start_time)
        curve["success_rate"].append(success_rate)
        curve["episodic_return"].append(mean_return)
        curve["episodes"].append(len(recent))
        curve["lambda"].append(lam)
        # cumulative live LLM calls, the teacher-alone measurement of the adaptive schedule included
        curve["llm_calls"].append(envs.teacher.planner.queries if envs.teacher.planner.live else 0)

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        sps = int((global_step - (start_iteration - 1) * args.batch_size) / (time.time() - start_time))
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("charts/success_rate", success_rate, global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        writer.add_scalar("teacher/lambda", lam, global_step)
        writer.add_scalar("teacher/kl", float(np.mean(teacher_kls)), global_step)
        writer.add_scalar("teacher/agreement", agreement, global_step)
        if successes is not None:
            writer.add_scalar("teacher/success_buffer_states", successes.size, global_step)
        stats = envs.teacher_stats()
        for key in ("queries", "cache_hits", "llm_calls", "llm_calls_per_1000_steps", "unparsed_steps",
                    "loop_breaks"):
            writer.add_scalar(f"teacher/{key}", stats[key], global_step)
        writer.add_scalar("charts/SPS", sps, global_step)
        bar.update(args.batch_size)
        bar.set_postfix(SPS=sps, success=f"{success_rate:.2f}", lam=f"{lam:.2f}", agree=f"{agreement:.2f}")

        last_checkpoint = make_checkpoint(iteration)
        if args.checkpoint_every and iteration % args.checkpoint_every == 0:
            save_atomically(last_checkpoint, run_path / "checkpoints" / f"iter_{iteration:06d}.pt")
            save_atomically(last_checkpoint, run_path / "checkpoints" / "latest.pt")
    bar.close()

    save_atomically(last_checkpoint, run_path / "checkpoints" / "latest.pt")

    def stop_run(message):
        print(message, file=sys.stderr)
        envs.close()
        writer.close()
        sys.exit(130)

    if interrupted:
        stop_run(f"interrupted: checkpoint of iteration {last_checkpoint['iteration']} written to "
                 f"{run_path / 'checkpoints' / 'latest.pt'}; continue with --resume")

    wall_seconds = wall_before + time.time() - start_time
    print(f"evaluating on {args.eval_episodes} fixed seeds ...", file=sys.stderr)
    try:
        eval_success, eval_return = evaluate(agent, args, device, stop=lambda: interrupted)
        sampled_success, sampled_return = evaluate(agent, args, device, greedy=False, stop=lambda: interrupted)
        # the teacher alone on the same seeds: student / teacher return above 1 means the student surpassed it
        teacher_eval_returns = teacher_alone_returns(args, envs.teacher.planner,
                                                     args.eval_seed + np.arange(args.eval_episodes),
                                                     stop=lambda: interrupted)
    except KeyboardInterrupt:
        stop_run(f"interrupted during the final evaluation: no summary written; the trained model is in "
                 f"{run_path / 'checkpoints' / 'latest.pt'}")
    writer.add_scalar("eval/success_rate", eval_success, global_step)
    writer.add_scalar("eval/mean_return", eval_return, global_step)
    writer.add_scalar("eval/sampled_success_rate", sampled_success, global_step)
    # 90% success over a full window of episodes (a handful of early episodes proves nothing)
    hit = next((i for i, (rate, count) in enumerate(zip(curve["success_rate"], curve["episodes"]))
                if rate >= 0.9 and count >= args.success_window), None)
    summary = {
        "env_id": args.env_id, "method": "ppo_teacher", "planner": args.planner, "schedule": args.schedule,
        "seed": args.seed, "frames": global_step, "wall_seconds": wall_seconds,
        "sps": global_step / wall_seconds if wall_seconds else 0.0,
        "eval_success_rate": eval_success, "eval_mean_return": eval_return, "eval_episodes": args.eval_episodes,
        "eval_sampled_success_rate": sampled_success, "eval_sampled_mean_return": sampled_return,
        "frames_to_90": None if hit is None else curve["frames"][hit],
        "wall_seconds_to_90": None if hit is None else curve["wall_seconds"][hit],
        "teacher_alone_return": teacher_return if args.schedule == "adaptive" else None,
        "teacher_demo_frames": demo_frames,
        "teacher_eval_success_rate": float(np.mean(teacher_eval_returns > 0)),
        "teacher_eval_mean_return": float(np.mean(teacher_eval_returns)),
        "teacher_stats": envs.teacher_stats(), "learning_curve": curve, "args": asdict(args),
    }
    write_atomically(json.dumps(summary, indent=1), run_path / "summary.json")
    print(f"{run_name}: eval success {eval_success:.2f} greedy, {sampled_success:.2f} sampled, frames to 90% {summary['frames_to_90']}, "
          f"{summary['sps']:.0f} SPS; summary in {run_path / 'summary.json'}")
    envs.close()
    writer.close()
