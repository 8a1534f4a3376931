"""teacher_wrappers.sb3: TeacherPPO, Stable-Baselines3's PPO with the teacher's distillation loss."""

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3", reason="the sb3 extra is not installed (pip install teacher-wrappers[sb3])")
from helpers import scalars
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import VecTransposeImage

from teacher_wrappers import TeacherWrapper
from teacher_wrappers.distillation import kl_to_teacher
from teacher_wrappers.sb3 import StudentFeatures, TeacherPPO
from teacher_wrappers.student import Agent, student_env, student_obs


def teacher_env(env_id="TeacherWrappers/SimpleDoorKey-v0"):
    # plain MiniGrid/BabyAI ids: the student's memory map and mission vector (SB3 has no Text space)
    return TeacherWrapper(student_env(env_id), planner="rules" if env_id.startswith("BabyAI") else "recorded")


def tiny_model(n_envs=2, env_id="TeacherWrappers/SimpleDoorKey-v0", **kwargs):
    env = make_vec_env(lambda: teacher_env(env_id), n_envs=n_envs, seed=0)
    return TeacherPPO("MultiInputPolicy", env, seed=0, teacher_eval_episodes=0, **kwargs)


def tensors(model, obs):
    """SB3's view of a batch of observations, as its policy receives it."""
    obs_tensor, _ = model.policy.obs_to_tensor(obs)
    return preprocess_obs(obs_tensor, model.observation_space, normalize_images=model.policy.normalize_images)


@pytest.mark.parametrize("env_id", ["TeacherWrappers/SimpleDoorKey-v0", "BabyAI-GoToObj-v0"])
def test_the_features_are_the_student_networks(env_id):
    model = tiny_model(env_id=env_id)
    assert not isinstance(model.env, VecTransposeImage) and not model.policy.normalize_images
    extractor = model.policy.features_extractor
    assert isinstance(extractor, StudentFeatures)
    obs = model.env.reset()
    for _ in range(5):  # a few steps in: a map with more than the first view
        obs, *_ = model.env.step(np.array([2] * model.n_envs))
    space = gym.spaces.Dict({k: v for k, v in model.observation_space.spaces.items() if k != "teacher_probs"})
    network = Agent.for_space(space, n_actions=7)
    missing = network.load_state_dict(extractor.student.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["actor.bias", "actor.weight", "critic.bias", "critic.weight"]
    with torch.no_grad():
        expected = network.features(torch.as_tensor(student_obs(obs)))
        assert torch.equal(model.policy.extract_features(tensors(model, obs)), expected)


def test_the_policy_never_reads_teacher_probs():
    model = tiny_model()
    obs = model.env.reset()
    with torch.no_grad():
        probs = model.policy.get_distribution(tensors(model, obs)).distribution.probs
        for replacement in (np.zeros_like(obs["teacher_probs"]), np.random.default_rng(0).random((2, 7)) * 100):
            other = {**obs, "teacher_probs": replacement.astype(np.float32)}
            assert torch.equal(model.policy.get_distribution(tensors(model, other)).distribution.probs, probs)


def test_the_kl_term_moves_the_student_towards_the_teacher(tmp_path):
    def teacher_kl(model, obs):
        with torch.no_grad():
            logits = model.policy.get_distribution(tensors(model, obs)).distribution.logits
        return kl_to_teacher(logits, torch.as_tensor(obs["teacher_probs"])).item()

    probe = make_vec_env(teacher_env, n_envs=64, seed=123).reset()  # 64 first states, held out of training
    kls = {}
    for lam in (0.0, 10.0):
        model = tiny_model(n_envs=4, schedule="linear", schedule_kwargs={"start": lam, "frames": 10**6},
                           anneal_lr=False, tensorboard_log=str(tmp_path / str(lam)))
        before = teacher_kl(model, probe)
        model.learn(512)
        kls[lam] = (before, teacher_kl(model, probe))
    # measured: 1.95 -> 1.20 with lambda 10, 1.95 -> 2.18 with lambda 0 (PPO alone)
    assert kls[10.0][1] < 0.7 * kls[10.0][0]  # the teacher's pull
    assert kls[10.0][1] < 0.7 * kls[0.0][1]  # not PPO alone
    tags = scalars(next((tmp_path / "10.0").iterdir()))
    # SB3 writes an update's records with the next rollout's: 3 of the 4 updates
    assert len(tags["teacher/lambda"]) >= 3 and all(lam == pytest.approx(10.0, rel=1e-3) for lam in tags["teacher/lambda"])
    assert len(tags["teacher/kl"]) >= 3 and 0 <= min(tags["teacher/agreement"]) <= 1
    assert tags["teacher/queries"][-1] > 0


def test_the_adaptive_schedule_measures_the_teacher_alone_and_bad_input():
    model = tiny_model(n_envs=4)
    assert model.batch_size == 4 * 32 // 4 and model.n_epochs == 3 and model.ent_coef == 0.01
    assert 0.5 < model.teacher_alone_return(8) < 1  # the recorded teacher solves SimpleDoorKey
    with pytest.raises(ValueError, match="teacher_probs"):
        TeacherPPO("MultiInputPolicy", make_vec_env(lambda: gym.make("TeacherWrappers/SimpleDoorKey-v0")))
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        tiny_model(schedule="cosine")
