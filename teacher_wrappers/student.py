"""The student: what it observes and the network that acts on it.

Both training scripts (`algorithms/ppo.py`, `algorithms/ppo_teacher.py`), the evaluation, the GIF renderer
and the tests use this one definition, so that a trained checkpoint always meets the network and the
observation it was trained with.

The student sees the memory map of the whole grid (`MemoryMapObservation`); on plain MiniGrid and BabyAI
ids also the mission (`obs["mission"]`), and with `visits=True` how often it has seen the current map
this episode (`RevisitCount`). It never reads `obs["teacher_probs"]`: the teacher is for the loss only.

Two networks share the encoder: `Agent` (feed-forward, `--student mlp`) and `RecurrentAgent` (`--student lstm`:
an LSTM over the encoder's features, its state carried from step to step and reset where an episode starts).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions.categorical import Categorical

from teacher_wrappers.episodic import RevisitCount
from teacher_wrappers.memory import MemoryMapObservation
from teacher_wrappers.view import use_fast_obs

MISSION_FIELDS, MISSION_VALUES = 12, 16  # the mission vector's instruction fields, each a small index
STUDENTS = ("mlp", "lstm")  # the scripts' --student: Agent, RecurrentAgent


def student_env(env_id: str, visits: bool = False, **make_kwargs) -> gym.Env:
    """`gym.make(env_id)` as the student observes it: the memory map (plain MiniGrid ids get one, with the
    mission), plus the revisit count with `visits=True`."""
    env = gym.make(env_id, **make_kwargs)
    use_fast_obs(env)  # MiniGrid/BabyAI ids: MiniGrid's observation exactly, computed without Grid objects
    try:
        env.get_wrapper_attr("memory_map")
    except AttributeError:
        env = MemoryMapObservation(env)  # plain MiniGrid envs: the student sees the memory map too
    return RevisitCount(env) if visits else env


def student_obs(obs: dict) -> np.ndarray:
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


def student_obs_shape(observation_space: gym.spaces.Dict) -> tuple[int, ...]:
    """The shape of `student_obs` for one observation of this space."""
    return student_obs({key: space.sample() for key, space in observation_space.spaces.items()}).shape


def layer_init(layer: nn.Module, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Module:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Egocentric(nn.Module):
    """Re-centres the memory map on the agent and turns it so that the agent faces up.

    The student still sees the whole map; in its own frame "the key is two cells ahead" looks the
    same wherever the agent stands, which makes navigation far quicker to learn. One gather
    per batch: each heading has a precomputed table of offsets into the zero-padded (unseen) map.
    """

    DIRS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])  # MiniGrid headings: east, south, west, north

    def __init__(self, width: int, height: int):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


class Agent(nn.Module):
    """A small CNN over the one-hot egocentric memory map (object, colour, state, heading per cell); the log of
    the revisit count joins the CNN's features when the observation has it.

    With `mission=True` the input carries the mission in an extra column (see `student_obs`): its
    instruction fields (action, object type, colour, location word, per instruction) are one-hot
    encoded, embedded and concatenated to the CNN features. (The start pose that location words refer
    to is not used: it is in absolute coordinates, the CNN's view is egocentric.)
    With `q_head=True` it also has a head Q(s, a) for every action (the Q-filter of `ppo_teacher.py`); with
    `int_value=True` a second value head `critic_int` for an intrinsic reward (`ppo_rnd.py`). Neither exists unless
    asked for, so the other networks' weights and initialisation are unchanged.
    """

    # MiniGrid has 11 object types, 6 colours, 3 door states; channel 3 holds heading + 1 (0: no agent).
    SIZES = (11, 6, 3, 5)
    recurrent = False

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, mission: bool = False, q_head: bool = False,
                 int_value: bool = False):
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
        # the value of the intrinsic reward (ppo_rnd.py), beside the critic's value of the environment's reward
        self.critic_int = layer_init(nn.Linear(128, 1), std=1) if int_value else None

    @classmethod
    def for_space(cls, observation_space: gym.spaces.Dict, n_actions: int, q_head: bool = False,
                  recurrent: bool = False, int_value: bool = False) -> Agent:
        """The network for a (single) observation space of a student env; a `RecurrentAgent` with `recurrent=True`."""
        return (RecurrentAgent if recurrent else cls)(student_obs_shape(observation_space), n_actions,
                                                      mission="mission" in observation_space.spaces, q_head=q_head,
                                                      int_value=int_value)

    def planes(self, x: torch.Tensor) -> torch.Tensor:
        """The map as the encoder reads it: egocentric, one-hot (batch, sum(SIZES), side, side) floats of 0 and 1;
        the mission column and the revisit count are left out."""
        if self.mission:
            x = x[:, :-1]
        cells = self.egocentric(x[..., : len(self.SIZES)]).long() + self.offsets
        # one-hot planes: each cell's four indices fall in four separate ranges, so adding ones sets them to 1
        # (scatter_add_ with a tensor of ones runs about twice as fast on CPU as scatter_ with the scalar 1.0)
        ones = torch.ones((), device=x.device).expand(cells.shape)
        planes = torch.zeros(cells.shape[:3] + (sum(self.SIZES),), device=x.device).scatter_add_(3, cells, ones)
        return planes.permute(0, 3, 1, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(self.planes(x))
        if self.counts:  # every cell of the fifth channel holds the count
            features = torch.cat([features, torch.log1p(x[:, 0, 0, len(self.SIZES):].float()) / math.log(256)], 1)
        if self.mission:  # the last column
            mission = x[:, -1].reshape(len(x), -1)[:, :MISSION_FIELDS].long()
            fields = torch.zeros(mission.shape + (MISSION_VALUES,), device=x.device).scatter_(
                2, mission.clamp(max=MISSION_VALUES - 1)[..., None], 1.0)
            features = torch.cat([features, self.mission_embedding(fields.flatten(1))], 1)
        return self.trunk(features)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(self.features(x))

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        """(action, its log-probability, entropy, value, logits, hidden features)."""
        return self.heads(self.features(x), action)

    def heads(self, hidden: torch.Tensor, action: torch.Tensor | None = None):
        """`get_action_and_value` from the hidden features."""
        logits = self.actor(hidden)
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(hidden), logits, hidden

    def act(self, obs: dict, greedy: bool = True, generator: torch.Generator | None = None) -> np.ndarray:
        """Actions for a batch of student-env observations (dicts of arrays), as a deployed student acts (one call
        per step; where sub-envs start new episodes, call `reset(mask)`: a recurrent student forgets them)."""
        device = self.actor.weight.device
        with torch.no_grad():
            logits = self.actor(self.step_features(torch.as_tensor(student_obs(obs), device=device)))
        if greedy:
            return logits.argmax(-1).cpu().numpy()
        return torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=generator).squeeze(1).numpy()

    def step_features(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden features of one step of the deployed student (`act`)."""
        return self.features(x)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """New episodes start in the sub-envs of `mask` (all with None): a feed-forward student forgets nothing."""


class Minibatches:
    """The PPO update's minibatches over a rollout of `num_steps` x `num_envs` samples, flattened step-major (as
    `rollout.reshape(-1)`), drawn as CleanRL draws them: made for each update (CleanRL's `b_inds`), each epoch
    shuffles the last one's order again and gives `num_minibatches` of samples or, with `whole_envs` (a recurrent
    student, as in CleanRL's `ppo_atari_lstm.py`), of environments with every step of each, time-major, so that
    their sequences can run again from the rollout's initial state.

        minibatches = Minibatches(num_steps, num_envs, num_minibatches, whole_envs=recurrent)
        for epoch in range(update_epochs):
            for indices, envs in minibatches.epoch():  # envs: None for samples
    """

    def __init__(self, num_steps: int, num_envs: int, num_minibatches: int, whole_envs: bool = False):
        self.whole_envs = whole_envs
        self.order = np.arange(num_envs if whole_envs else num_steps * num_envs)  # shuffled in place
        self.size = len(self.order) // num_minibatches
        self.steps_of = np.arange(num_steps * num_envs).reshape(num_steps, num_envs)

    def epoch(self):
        np.random.shuffle(self.order)
        for start in range(0, len(self.order), self.size):
            chosen = self.order[start:start + self.size]
            yield (self.steps_of[:, chosen].ravel(), chosen) if self.whole_envs else (chosen, None)


class RecurrentAgent(Agent):
    """`Agent` with an LSTM (128 units) between the encoder's features and the heads, as in CleanRL's
    `ppo_atari_lstm.py`: what it saw earlier in the episode (the key it tried, the turns it made) can change
    what it does now, so a greedy policy is not bound to repeat itself on a map that does not change.

    The LSTM's output is added to the features it reads (a skip connection), so the heads see the present and what
    memory adds to it. Without it the recurrent student imitated its teacher far more slowly than the feed-forward
    one: in a supervised check on ColoredDoorKey (the recorded teacher's suggestions on 3,072 of its own states, 5
    passes, KL x 10, whole-env minibatches) the KL fell from 1.33 to 0.66 for the feed-forward student, to 1.17 for
    a plain LSTM and to 0.59 with the skip connection; in training (150k frames) the plain LSTM never left KL ~1.2.

    The state of a batch of B sub-envs is one tensor (2, B, 128): the LSTM's h and c. Sequences are time-major:
    x holds T steps of B sub-envs as (T * B, ...), and `done` (T * B,) is 1 where a step's observation begins a
    new episode; the state is zeroed there (CleanRL's convention: `done` travels with the observation after it).
    """

    recurrent = True

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, mission: bool = False, q_head: bool = False,
                 int_value: bool = False):
        super().__init__(obs_shape, n_actions, mission=mission, q_head=q_head, int_value=int_value)
        self.lstm = nn.LSTM(128, 128)
        for name, parameter in self.lstm.named_parameters():
            if "bias" in name:
                nn.init.constant_(parameter, 0)
            else:
                nn.init.orthogonal_(parameter, 1.0)
        self.act_state: torch.Tensor | None = None  # the deployed student's state (`act`), not a weight

    def initial_state(self, num_envs: int) -> torch.Tensor:
        """The state at the start of an episode, for `num_envs` sub-envs: zeros (2, num_envs, 128)."""
        return torch.zeros(2, num_envs, self.lstm.hidden_size, device=self.actor.weight.device)

    def get_states(self, x: torch.Tensor, state: torch.Tensor, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM's outputs on a sequence (T * B, 128) and the state after it. The state is zeroed where `done`;
        the steps between two resets run as one LSTM call."""
        features = self.features(x)
        batch = state.shape[1]
        hidden, done = features.view(-1, batch, features.shape[-1]), done.view(-1, batch)
        starts = [0] + [t for t in range(1, len(done)) if done[t].any()]
        outputs = []
        for begin, end in zip(starts, starts[1:] + [len(done)]):
            state = state * (1.0 - done[begin]).view(1, -1, 1)
            output, (h, c) = self.lstm(hidden[begin:end], (state[:1].contiguous(), state[1:].contiguous()))
            state = torch.cat([h, c])
            outputs.append(output)
        return features + torch.cat(outputs).flatten(0, 1), state  # the skip connection: see the class docstring

    def episode_states(self, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """The LSTM's outputs on whole episodes, each from the zero state (an episode starts at a reset): `x` holds
        them one after another, episode i's `lengths[i]` steps; the outputs (sum(lengths), 128) in the same order."""
        features = self.features(x)
        packed = nn.utils.rnn.pack_sequence(features.split(lengths), enforce_sorted=False)
        output, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0])  # (T, episodes, 128), padded
        steps = torch.arange(output.shape[0], device=x.device)
        return features + output.transpose(0, 1)[steps[None] < torch.as_tensor(lengths, device=x.device)[:, None]]

    def get_value(self, x: torch.Tensor, state: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        return self.critic(self.get_states(x, state, done)[0])

    def get_action_and_value(self, x: torch.Tensor, state: torch.Tensor, done: torch.Tensor,
                             action: torch.Tensor | None = None):
        """(action, its log-probability, entropy, value, logits, LSTM outputs, the state after the sequence)."""
        hidden, state = self.get_states(x, state, done)
        return *self.heads(hidden, action), state

    def step_features(self, x: torch.Tensor) -> torch.Tensor:
        """One step of the deployed student (`act`): the state is carried from call to call, one row per sub-env (a
        batch of another size starts from zeros). Call `reset(mask)` where sub-envs start new episodes, `reset()`
        before new episodes everywhere."""
        if self.act_state is None or self.act_state.shape[1] != len(x):
            self.act_state = self.initial_state(len(x))
        hidden, self.act_state = self.get_states(x, self.act_state, torch.zeros(len(x), device=x.device))
        return hidden

    def reset(self, mask: np.ndarray | None = None) -> None:
        """The sub-envs of `mask` (bool per sub-env; all with None) start new episodes: their state is zeroed."""
        if mask is None or self.act_state is None:
            self.act_state = None
        else:
            keep = torch.as_tensor(~np.asarray(mask, dtype=bool), dtype=torch.float32, device=self.act_state.device)
            self.act_state = self.act_state * keep.view(1, -1, 1)
