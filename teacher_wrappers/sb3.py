"""Stable-Baselines3 integration (the `sb3` extra): PPO with the LLM teacher's distillation loss.

    from stable_baselines3.common.env_util import make_vec_env
    from teacher_wrappers import TeacherWrapper
    from teacher_wrappers.sb3 import TeacherPPO

    env = make_vec_env(lambda: TeacherWrapper(gym.make("TeacherWrappers/SimpleDoorKey-v0"), planner="recorded"),
                       n_envs=16)
    model = TeacherPPO("MultiInputPolicy", env, seed=0).learn(100_000)

`TeacherPPO.train()` adds `lambda_t * KL(teacher || student)` on the rollout's `obs["teacher_probs"]` to SB3's
PPO loss, with the schedules of `algorithms/ppo_teacher.py` (`teacher_wrappers.distillation`). The default
policy's features extractor is the package's student network (`StudentFeatures`), which sees the memory map
as the scripts do (no image transposing, no /255 scaling) and never reads `teacher_probs`: the trained
student acts without the teacher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv, VecTransposeImage
from torch.nn import functional as F

from teacher_wrappers.distillation import (
    distillation_loss,
    kl_to_teacher,
    make_schedule,
)
from teacher_wrappers.student import Agent, student_obs
from teacher_wrappers.teacher import TeacherStats

TEACHER_KEY = "teacher_probs"


class StudentFeatures(BaseFeaturesExtractor):
    """The package's student network (`teacher_wrappers.student.Agent`) up to its 128 hidden features, as an SB3
    features extractor. It reads the student's keys of the Dict observation (`student_obs`) and never
    `teacher_probs`."""

    def __init__(self, observation_space: spaces.Dict):
        student_space = spaces.Dict({key: space for key, space in observation_space.spaces.items()
                                     if key != TEACHER_KEY})
        network = Agent.for_space(student_space, n_actions=1)
        super().__init__(observation_space, features_dim=network.actor.in_features)
        del network.actor, network.critic  # SB3's policy has its own heads
        self.student = network

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        arrays = {key: value.cpu().numpy() for key, value in observations.items() if key != TEACHER_KEY}
        return self.student.features(torch.as_tensor(student_obs(arrays), device=observations["image"].device))


@dataclass(frozen=True)
class Annealed:
    """A learning rate falling linearly to 0 over the run (SB3 calls it with the progress remaining, 1 -> 0)."""

    start: float

    def __call__(self, progress_remaining: float) -> float:
        return self.start * progress_remaining


class TeacherPPO(PPO):
    """`stable_baselines3.PPO` plus `lambda_t * KL(teacher || student)` on the rollout's `obs["teacher_probs"]`.

    The env's observations must carry `teacher_probs` (a `TeacherWrapper` in each sub-env). Defaults follow
    `algorithms/ppo_teacher.py`, not SB3: 32 steps per env and update, 4 minibatches (`batch_size` None: a
    quarter of the rollout), 3 epochs, learning rate 5e-4 annealed to 0, entropy 0.01, and the policy's features
    extractor `StudentFeatures` with no hidden layers after it and `normalize_images=False`.

    `schedule` is "adaptive" (default), "linear" or "reference" (`teacher_wrappers.distillation.make_schedule`,
    with `schedule_kwargs`, e.g. `{"start": 10.0, "frames": 100_000}`) or a callable
    `(iteration, global_step, recent_return, teacher_return) -> lambda`. The adaptive schedule compares the
    student's recent mean return (episodes recorded by SB3's `Monitor`, which `make_vec_env` adds; at least 10)
    with the teacher's acting alone: `teacher_return`, or, if None, measured before the first update by letting
    the teacher act alone for `teacher_eval_episodes` episodes in the training env (not counted in the budget).
    TensorBoard gets `teacher/lambda`, `teacher/kl`, `teacher/agreement` and the teachers' counters.
    """

    def __init__(self, policy: str | type = "MultiInputPolicy", env: gym.Env | VecEnv | str | None = None,
                 learning_rate: float | Callable[[float], float] = 5e-4, n_steps: int = 32,
                 batch_size: int | None = None, n_epochs: int = 3, ent_coef: float = 0.01, anneal_lr: bool = True,
                 schedule: str | Callable = "adaptive", schedule_kwargs: dict | None = None,
                 teacher_return: float | None = None, teacher_eval_episodes: int = 20,
                 policy_kwargs: dict | None = None, **kwargs):
        if isinstance(learning_rate, (int, float)) and anneal_lr:
            learning_rate = Annealed(float(learning_rate))
        policy_kwargs = {"features_extractor_class": StudentFeatures, "normalize_images": False,
                         "net_arch": {"pi": [], "vf": []}, **(policy_kwargs or {})}
        self.schedule = make_schedule(schedule, **(schedule_kwargs or {})) if isinstance(schedule, str) else schedule
        self.teacher_return = teacher_return
        self.teacher_eval_episodes = teacher_eval_episodes
        self.lam, self.iteration = 0.0, 0
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size or 64,
                         n_epochs=n_epochs, ent_coef=ent_coef, policy_kwargs=policy_kwargs, **kwargs)
        if batch_size is None:
            self.batch_size = max(self.n_envs * self.n_steps // 4, 2)
        if TEACHER_KEY not in getattr(self.observation_space, "spaces", {}):
            raise ValueError(f"TeacherPPO needs observations with {TEACHER_KEY!r} (wrap each env in a TeacherWrapper)")

    @staticmethod
    def _wrap_env(env, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        """SB3's wrapping, except the channels-first transpose: the memory map is not an image."""
        wrapped = PPO._wrap_env(env, verbose, monitor_wrapper)
        if isinstance(wrapped, VecTransposeImage) and not isinstance(env, VecTransposeImage):
            return wrapped.venv
        return wrapped

    def teacher_alone_return(self, episodes: int) -> float:
        """Mean return of the teacher acting alone (actions sampled from `teacher_probs`) over `episodes`
        episodes of the training env; the next `learn` starts from a fresh reset."""
        rng = np.random.default_rng(self.seed)
        obs, running, returns = self.env.reset(), np.zeros(self.n_envs), []
        while len(returns) < episodes:
            cumulative = np.cumsum(obs[TEACHER_KEY], axis=1)
            draws = rng.random(len(cumulative))[:, None] * cumulative[:, -1:]
            actions = np.minimum((cumulative <= draws).sum(1), cumulative.shape[1] - 1)
            obs, rewards, dones, _ = self.env.step(actions)
            running += rewards
            returns += list(running[dones])
            running[dones] = 0
        self._last_obs = None  # SB3 resets the env before the next rollout
        return float(np.mean(returns[:episodes]))

    def learn(self, total_timesteps: int, *args, **kwargs):
        if self.teacher_return is None and self.teacher_eval_episodes > 0 and self.env is not None:
            self.teacher_return = self.teacher_alone_return(self.teacher_eval_episodes)
        return super().learn(total_timesteps, *args, **kwargs)

    def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps: int) -> bool:
        """lambda for the coming update, set before the rollout: a switched-off teacher is not asked."""
        self.iteration += 1
        recent = [info["r"] for info in self.ep_info_buffer] if self.ep_info_buffer else []
        self.lam = float(self.schedule(self.iteration, self.num_timesteps,
                                       float(np.mean(recent)) if len(recent) >= 10 else None,
                                       self.teacher_return or 0.0))
        env.env_method("set_wrapper_attr", "teacher_enabled", self.lam > 0)
        return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)

    def _evaluate(self, observations, actions):
        """SB3's `evaluate_actions`, plus the logits the distillation needs (one forward pass)."""
        policy = self.policy
        features = policy.extract_features(observations)
        if policy.share_features_extractor:
            latent_pi, latent_vf = policy.mlp_extractor(features)
        else:
            latent_pi = policy.mlp_extractor.forward_actor(features[0])
            latent_vf = policy.mlp_extractor.forward_critic(features[1])
        distribution = policy._get_action_dist_from_latent(latent_pi)
        return (policy.value_net(latent_vf).flatten(), distribution.log_prob(actions), distribution.entropy(),
                distribution.distribution.logits)

    def train(self) -> None:
        """SB3's PPO update (stable_baselines3.PPO.train, MIT licence) with the distillation term added."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(self._current_progress_remaining)
        entropy_losses, pg_losses, value_losses, clip_fractions, teacher_kls, agreements = [], [], [], [], [], []
        approx_kl_divs, continue_training = [], True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions.long().flatten()
                values, log_prob, entropy, logits = self._evaluate(rollout_data.observations, actions)
                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = torch.exp(log_prob - rollout_data.old_log_prob)
                policy_loss = -torch.min(advantages * ratio,
                                         advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
                pg_losses.append(policy_loss.item())
                clip_fractions.append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())
                values_pred = values if clip_range_vf is None else rollout_data.old_values + torch.clamp(
                    values - rollout_data.old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())
                entropy_loss = -torch.mean(entropy)
                entropy_losses.append(entropy_loss.item())

                teacher = rollout_data.observations[TEACHER_KEY]
                distill = distillation_loss(logits, teacher, self.lam)
                with torch.no_grad():
                    teacher_kls.append(kl_to_teacher(logits, teacher).item())
                    agreements.append((logits.argmax(-1) == teacher.argmax(-1)).float().mean().item())
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss + distill

                with torch.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        record = self.logger.record
        record("train/entropy_loss", np.mean(entropy_losses))
        record("train/policy_gradient_loss", np.mean(pg_losses))
        record("train/value_loss", np.mean(value_losses))
        record("train/approx_kl", np.mean(approx_kl_divs))
        record("train/clip_fraction", np.mean(clip_fractions))
        record("train/loss", loss.item())
        record("train/explained_variance",
               explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()))
        record("train/n_updates", self._n_updates, exclude="tensorboard")
        record("train/clip_range", clip_range)
        record("teacher/lambda", self.lam)
        record("teacher/kl", float(np.mean(teacher_kls)))
        record("teacher/agreement", float(np.mean(agreements)))
        stats = self.teacher_stats()
        for key in ("queries", "cache_hits", "llm_calls", "llm_calls_per_1000_steps", "unparsed_steps", "loop_breaks"):
            record(f"teacher/{key}", stats[key])

    def teacher_stats(self) -> dict:
        """The counters of the sub-envs' teachers, summed (`TeacherStats.summary`)."""
        counters = [TeacherStats.of(stats) for stats in self.env.env_method("teacher_stats")]
        return sum(counters, TeacherStats()).summary()


def success_rate(model, env: gym.Env, episodes: int, deterministic: bool = False, seed: int = 1_000_000) -> float:
    """Share of `episodes` episodes (env seeds `seed`, `seed + 1`, ...) the student solves acting alone in `env`
    (one env with a `TeacherWrapper`, whose teacher is switched off here: the policy never reads its
    probabilities); `deterministic=False` samples the actions, `True` takes the argmax."""
    env.get_wrapper_attr("teacher_enabled")  # a clear AttributeError on an env without a TeacherWrapper
    env.set_wrapper_attr("teacher_enabled", False)
    wins = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            done = terminated or truncated
        wins += reward > 0
    return wins / episodes
