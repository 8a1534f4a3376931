"""algorithms/ppo_rnd.py, PPO + Random Network Distillation, on tiny budgets (as tests/test_algorithms.py runs ppo.py).

The script's RND pieces (the target and predictor networks, the observation normalisation) are imported from the
script itself, as the sweep (benchmarks.sweep.job) imports a script's Args.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import scalars
from test_algorithms import LSTM, TINY, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ppo_rnd():
    spec = importlib.util.spec_from_file_location("ppo_rnd_script", ROOT / "algorithms" / "ppo_rnd.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # tyro inspects the module of Args
    spec.loader.exec_module(module)  # the training itself runs as __main__ only
    yield module
    del sys.modules[spec.name]


def test_ppo_rnd_trains_and_writes_a_summary(tmp_path):
    # a plain MiniGrid id with --visits: the mission column and the revisit count are in the input, not in RND's
    run("ppo_rnd.py", "--env-id", "MiniGrid-DoorKey-5x5-v0", "--visits", "--total-timesteps", "256",
        "--run-name", "r", *TINY, cwd=tmp_path)
    summary = json.loads((tmp_path / "runs/r/summary.json").read_text())
    assert summary["method"] == "ppo_rnd" and summary["frames"] == 256 and summary["sps"] > 0
    assert summary["args"]["ext_coef"] == 2.0 and summary["args"]["int_coef"] == 1.0
    intrinsic = summary["learning_curve"]["intrinsic_reward"]
    assert len(intrinsic) == 2 and all(value > 0 for value in intrinsic)
    tags = scalars(tmp_path / "runs/r")
    assert {"charts/intrinsic_reward", "losses/fwd_loss", "losses/int_value_loss", "charts/success_rate"} <= set(tags)
    checkpoint = torch.load(tmp_path / "runs/r/checkpoints/latest.pt", weights_only=False)
    assert "critic_int.weight" in checkpoint["agent"]
    assert any(name.startswith("target.") for name in checkpoint["rnd_model"])
    assert checkpoint["state"]["obs_rms"]["count"] > 256  # every state reached updated the statistics


def _final(path):
    checkpoint = torch.load(path, weights_only=False)
    return checkpoint["agent"], checkpoint["rnd_model"], checkpoint["state"]


@pytest.mark.parametrize("extra", [[], LSTM], ids=["mlp", "lstm"])
def test_resume_matches_an_uninterrupted_run(tmp_path, extra):
    """The agent, the predictor, the observation and reward statistics and the intrinsic returns all continue."""
    common = ["--total-timesteps", "384", "--checkpoint-every", "2", *extra]
    run("ppo_rnd.py", *common, "--run-name", "full", *TINY, cwd=tmp_path)
    full = tmp_path / "runs/full"
    agent, rnd_model, state = _final(full / "checkpoints/latest.pt")
    curve = json.loads((full / "summary.json").read_text())["learning_curve"]
    (full / "summary.json").unlink()
    run("ppo_rnd.py", *common, "--resume", str(full / "checkpoints/iter_000002.pt"), *TINY, cwd=tmp_path)
    agent_again, rnd_model_again, state_again = _final(full / "checkpoints/latest.pt")
    assert all(torch.equal(agent[name], agent_again[name]) for name in agent)
    assert all(torch.equal(rnd_model[name], rnd_model_again[name]) for name in rnd_model)
    for name in ("obs_rms", "reward_rms"):
        assert all(np.array_equal(state[name][key], state_again[name][key]) for key in ("mean", "var", "count"))
    assert np.array_equal(state["discounted_reward"], state_again["discounted_reward"])
    again = json.loads((full / "summary.json").read_text())["learning_curve"]
    assert again["success_rate"] == curve["success_rate"]
    assert again["intrinsic_reward"] == curve["intrinsic_reward"]


def test_the_intrinsic_reward_falls_on_a_state_seen_again_and_again_and_stays_high_on_new_ones(ppo_rnd):
    from teacher_wrappers.student import Agent, student_env, student_obs

    torch.manual_seed(0)
    env = student_env("MiniGrid-DoorKey-5x5-v0")
    env.action_space.seed(0)
    states = []
    for seed in range(40):  # a few random steps into each of 40 layouts
        obs, _ = env.reset(seed=seed)
        for _ in range(5):
            obs, *_ = env.step(env.action_space.sample())
            states.append(student_obs(obs))
    planes = Agent.for_space(env.observation_space, 7).planes(torch.as_tensor(np.stack(states)))
    obs_rms = ppo_rnd.RunningMeanStd(shape=planes.shape[1:])
    obs_rms.update(planes.numpy())
    x = ppo_rnd.normalise(planes, obs_rms)
    assert x.abs().max() <= 5 and x.abs().max() > 1  # whitened and clipped: rare one-hot elements stand out
    rnd_model = ppo_rnd.RNDModel(planes.shape[1], planes.shape[-1])
    seen, new = x[:1], x[100:]  # one state of the first layout; states of 20 other layouts
    with torch.no_grad():
        seen_before, new_before = rnd_model.intrinsic_reward(seen), rnd_model.intrinsic_reward(new)
    target = [p.clone() for p in rnd_model.target.parameters()]
    optimizer = torch.optim.Adam(rnd_model.predictor.parameters(), lr=5e-4)
    for _ in range(100):  # the same state, again and again
        optimizer.zero_grad()
        rnd_model.loss(seen.expand(32, -1, -1, -1), update_proportion=0.25).backward()
        optimizer.step()
    with torch.no_grad():
        seen_after, new_after = rnd_model.intrinsic_reward(seen), rnd_model.intrinsic_reward(new)
    assert seen_after.item() < 0.01 * seen_before.item()
    assert new_after.mean().item() > 0.4 * new_before.mean().item()
    assert new_after.min().item() > 100 * seen_after.item()
    assert all(torch.equal(p, q) for p, q in zip(target, rnd_model.target.parameters()))  # the target never learns


def test_update_proportion_must_be_a_proportion(tmp_path):
    proc = run("ppo_rnd.py", "--update-proportion", "0", "--total-timesteps", "256", *TINY, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "--update-proportion must be above 0 and at most 1, got 0.0" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

