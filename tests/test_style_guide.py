"""The worked example of docs/styles.md: its code, run as it stands in the guide, gives a working teacher."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid ids)
import numpy as np
import pytest

from teacher_wrappers import MemoryMapObservation, TeacherWrapper, make_teacher_vector_env
from teacher_wrappers.plans import Option
from teacher_wrappers.prompt import chat_messages

pytestmark = pytest.mark.xdist_group("style_guide")  # its module fixtures stay in one test worker

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "styles.md"


@pytest.fixture(scope="module")
def guide():
    """The names the guide's code blocks define, run in order (the usage block prints one line)."""
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL):
        exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace


def test_the_guides_style_parses_its_steps_and_builds_its_prompt(guide):
    style = guide["GoalStyle"]()
    assert style.parse_plan("look around, explore, go to <goal>").options == (
        Option("look around"), Option("explore"), Option("go to", "goal"))
    assert style.parse_plan("go to <key>, dance").unknown_steps == 2  # not its objects, not its skills
    assert chat_messages("Agent sees <goal>.", style)[0]["content"] == style.system_prompt
    assert guide["info"]["teacher"]["plan"] == "look around, explore"


@pytest.mark.parametrize("env_id", ["MiniGrid-LavaGapS7-v0", "MiniGrid-FourRooms-v0"])
def test_the_guides_style_and_skill_reach_the_goal(guide, env_id):
    env = TeacherWrapper(gym.make(env_id), planner="rules", text_style=guide["GoalStyle"]())
    rng, options, successes = np.random.default_rng(0), set(), 0
    for episode in range(5):
        obs, info = env.reset(seed=episode)
        done = False
        while not done:
            options.add(info["teacher"]["option"])
            probs = obs["teacher_probs"].astype(np.float64)
            obs, reward, terminated, truncated, info = env.step(int(rng.choice(7, p=probs / probs.sum())))
            done = terminated or truncated
        successes += reward > 0
    assert successes == 5 and {"look around", "explore", "go to <goal>"} <= options  # the new skill acts too
    stats = env.teacher_stats()
    assert stats["unparsed_steps"] == 0 and stats["unresolved_targets"] == 0 and env.teacher.text_style == "goal"


def test_the_guides_style_in_worker_processes(guide):
    envs = make_teacher_vector_env([lambda: MemoryMapObservation(gym.make("MiniGrid-Empty-8x8-v0"))] * 2,
                                   planner="rules", text_style=guide["GoalStyle"](), asynchronous=True, workers=2,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    try:
        obs, _ = envs.reset(seed=0)
        rewards = 0.0
        for _ in range(40):
            obs, reward, *_ = envs.step(obs["teacher_probs"].argmax(1))
            rewards += reward.sum()
    finally:
        envs.close()
    assert rewards > 1 and np.allclose(obs["teacher_probs"].sum(1), 1)
