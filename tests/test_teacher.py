import numpy as np
import pytest
from helpers import place_agent, put, room_map

from teacher_wrappers import Teacher
from teacher_wrappers.skills import LEFT, PICKUP, RIGHT, TOGGLE
from teacher_wrappers.teacher import LOOP_LIMIT


def test_soft_teacher_sums_plan_probabilities_per_action():
    memory = room_map()
    put(memory, (3, 2), "key", "red")
    put(memory, (6, 4), "door", "red", "locked")
    place_agent(memory, (3, 3), 3)  # facing the key
    [(probs, info)] = Teacher("recorded", task="SimpleDoorKey").act([memory])
    # 0.84 + 0.08 + 0.04 + 0.02 start with "go to <key>" (done: facing it) then "pick up <key>";
    # 0.02 "go to <key>, go to <door>, use <key>" walks on to the door.
    assert probs[PICKUP] == pytest.approx(0.98, abs=1e-6)
    assert probs.sum() == pytest.approx(1.0)
    assert info["plan"] == "go to <key>, pick up <key>, go to <door>, open <door>"
    assert info["option"] == "pick up <key>"


def test_same_cells_with_the_agent_elsewhere_are_described_apart():
    teacher = Teacher("rules")
    lying = room_map()
    put(lying, (2, 2), "key", "red")
    place_agent(lying, (4, 4), 0)
    carried = room_map()
    place_agent(carried, (2, 2), 0, carrying=("key", "red"))
    assert np.array_equal(lying[..., :3], carried[..., :3])
    texts = [info["text"] for _, info in teacher.act([lying, carried])]
    assert texts == ["Agent sees <key>, holds <nothing>.", "Agent sees <nothing>, holds <key>."]


def test_each_text_is_planned_once_and_counted():
    teacher = Teacher("recorded", task="SimpleDoorKey")
    memory = room_map()
    place_agent(memory, (3, 3), 0)
    for heading in range(4):
        place_agent(memory, (3, 3), heading)
        teacher.act([memory, memory])
    stats = teacher.summary()
    assert stats["queries"] == 1 and stats["steps"] == 8 and stats["cache_hits"] == 8


def test_unknown_text_falls_back_to_explore_and_is_counted():
    teacher = Teacher("recorded", task="SimpleDoorKey")
    memory = room_map(seen=False)
    put(memory, (2, 2), "goal", "green")
    place_agent(memory, (3, 3), 0)
    [(probs, info)] = teacher.act([memory])
    assert info["plan"] == "explore" and teacher.planner.fallbacks == 1
    assert probs.max() == 1.0


def test_revisited_states_loosen_the_suggestion():
    memory = room_map()
    put(memory, (6, 3), "door", "red", "locked")
    place_agent(memory, (5, 3), 0, carrying=("key", "red"))  # facing the door with its key
    teacher = Teacher("rules")
    [(probs, info)] = teacher.act([memory], visits=[1])
    assert probs[TOGGLE] == 1.0 and "loop_break" not in info
    [(probs, info)] = teacher.act([memory], visits=[LOOP_LIMIT])
    # All seen: half the suggestion, half uniform over {toggle, left, right}.
    assert info["loop_break"] and probs[TOGGLE] == pytest.approx(0.5 + 0.5 / 3)
    assert probs[LEFT] == probs[RIGHT] == pytest.approx(0.5 / 3)
    assert teacher.summary()["loop_breaks"] == 1
