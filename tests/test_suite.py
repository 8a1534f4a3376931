"""The suite teacher: missions, the suite text style, its rules and skills on MiniGrid and BabyAI envs."""

import gymnasium as gym
import minigrid  # noqa: F401  (registers MiniGrid and BabyAI ids)
import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.world_object import Ball, Door, Key, Wall

from teacher_wrappers import MemoryMapObservation, TeacherVectorWrapper, TeacherWrapper, make_teacher_vector_env
from teacher_wrappers.memory import MemoryMap
from teacher_wrappers.mission import (GO_TO, OPEN, PICK_UP, Mission, MissionError, ObjDesc, decode, encode,
                                      parse_mission, start_mission)
from teacher_wrappers.styles import get_style
from teacher_wrappers.styles.suite import describe_suite, parse_name, parse_suite_text, suite_rule_plan
from teacher_wrappers.teacher import Teacher

LEFT, RIGHT, DROP, DONE = 0, 1, 4, 6


@pytest.mark.parametrize("text, canonical", [
    ("get to the green goal square", "go to the goal"),
    ("use the key to open the door and then get to the goal", "go to the goal"),
    ("go fetch a red ball", "pick up the red ball"),
    ("you must fetch a blue key", "pick up the blue key"),
    ("pick up a blue box", "pick up the blue box"),
    ("put the green ball near the red box", "put the green ball next to the red box"),
    ("open the red door then the blue door", "open the red door, then open the blue door"),
    ("open the door on your left", "open the door on your left"),
    ("go to the grey key after you open a door", "open the door, then go to the grey key"),
    ("pick up the object in front of you", "pick up the object in front of you"),
])
def test_missions_parse_to_a_canonical_wording(text, canonical):
    mission = parse_mission(text)
    assert mission.text == canonical
    assert parse_mission(mission.text) == mission  # the canonical wording parses back to the same goal


def test_unknown_missions_raise_and_mission_vectors_round_trip():
    with pytest.raises(MissionError, match="cannot parse mission"):
        parse_mission("dance around the red ball")
    mission = parse_mission("pick up the ball on your right").with_anchor(3, 4, 1)
    assert decode(encode(mission)) == mission
    assert mission.locates(ObjDesc("ball", loc="right"), (2, 4))  # facing south, west is on the right
    assert not mission.locates(ObjDesc("ball", loc="right"), (4, 4))
    # a mission without location words ignores the start pose, so its texts are shared across episodes
    assert parse_mission("open the door").with_anchor(3, 4, 1).anchor is None


def _map_with(objects, agent=(1, 1), heading=0, size=6, carrying=None):
    """A fully seen room with `objects` ({(x, y): WorldObj}) as a memory map."""
    env = gym.make("MiniGrid-Empty-6x6-v0").unwrapped
    env.reset(seed=0)
    env.grid = Grid(size, size)
    env.grid.wall_rect(0, 0, size, size)
    for pos, obj in objects.items():
        env.grid.set(*pos, obj)
    env.agent_pos, env.agent_dir, env.carrying = agent, heading, carrying
    memory = MemoryMap(size, size)
    full = env.grid.encode()
    memory.cells[:] = full
    memory.update(env, np.zeros((3, 3, 3), dtype=np.uint8))
    return memory.observation()


def test_suite_text_names_every_object_with_colour_state_and_the_mission():
    doors = {(5, 2): Door("yellow", is_locked=True), (2, 5): Door("red", is_open=True)}
    memory_map = _map_with({(2, 2): Key("yellow"), (4, 2): Ball("grey"), **doors}, carrying=Ball("blue"))
    description = describe_suite(memory_map, parse_mission("pick up the purple box"))
    assert description.text == ("Mission: pick up the purple box. Agent sees <yellow key>, "
                                "<grey ball in the way>, <open red door>, <locked yellow door>, holds <blue ball>.")
    mission, seen, held = parse_suite_text(description.text)
    assert mission.text == "pick up the purple box" and held == "blue ball" and len(seen) == 4
    assert description.objects["grey ball in the way"] == [(4, 2)]
    assert parse_name("locked yellow door").state == "locked"


def test_location_words_mark_the_objects_they_pick_out():
    mission = parse_mission("open the door on your left").with_anchor(2, 2, 0)  # facing east: left is north
    memory_map = _map_with({(3, 0): Door("red"), (3, 5): Door("blue")}, agent=(2, 2))
    text = describe_suite(memory_map, mission).text
    assert "<closed red door on your left>" in text and "<closed blue door>" in text
    assert suite_rule_plan(text) == "go to <closed red door on your left>, open <closed red door on your left>"


@pytest.mark.parametrize("mission, named", [
    ("pick up the purple ball", True), ("go to the ball", True), ("put the green key next to the purple ball", True),
    ("pick up the red box", False), ("put the purple ball next to the green key", True),
])
def test_the_missions_own_object_is_never_in_the_way(mission, named):
    # KeyCorridor: the ball asked for stands on the threshold of the door just unlocked
    memory_map = _map_with({(3, 2): Door("yellow", is_open=True), (4, 2): Ball("purple"), (1, 4): Key("green")},
                           agent=(2, 2), carrying=Key("yellow"))
    text = describe_suite(memory_map, parse_mission(mission)).text
    assert ("<purple ball>" in text) == named and ("<purple ball in the way>" in text) == (not named)
    if mission == "pick up the purple ball":  # fetched, never moved aside
        assert suite_rule_plan(text) == "drop <yellow key>, go to <purple ball>, pick up <purple ball>"


def test_a_held_key_is_dropped_even_where_every_free_cell_is_next_to_a_door():
    # KeyCorridorS3R1's corridor: | free | open door | agent, holding the key | open door | ball |
    walls = {(x, y): Wall() for x in range(1, 6) for y in range(1, 6) if y != 2}
    memory_map = _map_with({**walls, (2, 2): Door("blue", is_open=True), (4, 2): Door("yellow", is_open=True),
                            (5, 2): Ball("purple")}, agent=(3, 2), heading=0, size=7, carrying=Key("yellow"))
    teacher, mission = Teacher("rules", text_style="suite"), parse_mission("pick up the purple ball")
    [(probs, info)] = teacher.act([memory_map], missions=[mission])
    assert info["option"] == "drop <yellow key>" and probs[LEFT] + probs[RIGHT] == 1  # turn back to the free cell
    place = memory_map.copy()
    place[..., 3] = 0
    place[2, 2, 3] = 3  # the agent in the blue doorway, facing west: the free cell in front
    place[2, 2, :3] = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["yellow"], 0)
    place[3, 2, :3] = (OBJECT_TO_IDX["empty"], 0, 0)
    [(probs, info)] = teacher.act([place], missions=[mission])
    assert probs[DROP] == 1


@pytest.mark.parametrize("text, plan", [
    # a locked door whose key is in sight: fetch it, open the door
    ("Mission: go to the goal. Agent sees <yellow key>, <locked yellow door>, holds <nothing>.",
     "go to <yellow key>, pick up <yellow key>, go to <locked yellow door>, open <locked yellow door>"),
    # a ball in front of the door is moved first, and dropped once carried
    ("Mission: pick up the red box. Agent sees <yellow key>, <grey ball in the way>, <locked yellow door>, "
     "holds <nothing>.", "go to <grey ball in the way>, pick up <grey ball in the way>"),
    ("Mission: pick up the red box. Agent sees <yellow key>, <locked yellow door>, holds <grey ball>.",
     "drop <grey ball>"),
    # the same with the key in hand: put it down to move the ball (the next texts fetch the key again)
    ("Mission: open the door. Agent sees <yellow ball in the way>, <locked grey door>, holds <grey key>.",
     "drop <grey key>, go to <yellow ball in the way>, pick up <yellow ball in the way>"),
    # the key may be in a box
    ("Mission: open the door. Agent sees <green box>, <locked red door>, holds <nothing>.",
     "go to <green box>, open <green box>"),
    # the red door first; then the blue one
    ("Mission: open the red door, then open the blue door. Agent sees <closed red door>, <closed blue door>, "
     "holds <nothing>.", "go to <closed red door>, open <closed red door>"),
    ("Mission: open the red door, then open the blue door. Agent sees <open red door>, <closed blue door>, "
     "holds <nothing>.", "go to <closed blue door>, open <closed blue door>"),
    # stopping is part of going to a door; Fetch never picks up the wrong object
    ("Mission: go to the red door. Agent sees <closed red door>, holds <nothing>.",
     "go to <closed red door>, done"),
    ("Mission: pick up the red ball. Agent sees <blue key>, holds <nothing>.", "explore"),
    ("Mission: put the green ball next to the red box. Agent sees <red box>, holds <green ball>.",
     "put <green ball> near <red box>"),
    ("Mission: pick up the red ball. Agent sees <red ball>, holds <yellow key>.",
     "drop <yellow key>, go to <red ball>, pick up <red ball>"),
])
def test_suite_rules(text, plan):
    assert suite_rule_plan(text) == plan
    assert get_style("suite").parse_plan(plan).unknown_steps == 0


SOME_ENVS = ["MiniGrid-BlockedUnlockPickup-v0", "MiniGrid-KeyCorridorS3R1-v0", "MiniGrid-KeyCorridorS3R3-v0", "MiniGrid-GoToDoor-5x5-v0",
             "MiniGrid-PutNear-6x6-N2-v0", "MiniGrid-RedBlueDoors-6x6-v0", "MiniGrid-MultiRoom-N2-S4-v0",
             "BabyAI-OpenDoor-v0", "BabyAI-KeyInBox-v0", "BabyAI-PickupLoc-v0"]


def _run(env, rng, max_steps=None):
    obs, info = env.reset(seed=int(rng.integers(1_000_000)))
    total, done, probs_seen = 0.0, False, []
    while not done:
        probs = obs["teacher_probs"].astype(np.float64)
        probs_seen.append(probs)
        obs, reward, terminated, truncated, info = env.step(int(rng.choice(len(probs), p=probs / probs.sum())))
        total, done = total + reward, terminated or truncated
    return total, probs_seen


@pytest.mark.parametrize("env_id", SOME_ENVS)
def test_rules_teacher_alone_solves_suite_envs(env_id):
    env = TeacherWrapper(gym.make(env_id), planner="rules")
    rng = np.random.default_rng(0)
    for _ in range(4):
        total, _ = _run(env, rng)
        assert total > 0, f"{env_id}: the rules teacher failed an episode"
    assert env.teacher_stats()["unparsed_steps"] == 0
    assert env.teacher.text_style == "suite"


def test_no_weight_on_done_unless_the_mission_ends_by_stopping():
    # A fully seen room without the ball asked for: nothing is left to do, and the teacher turns
    # instead of suggesting `done` (which ends MiniGrid's GoToDoor episodes at reward 0).
    teacher = Teacher("rules", text_style="suite")
    room = _map_with({}, agent=(2, 2))
    [(probs, info)] = teacher.act([room], missions=[parse_mission("pick up the red ball")])
    assert probs[DONE] == 0 and probs.max() == 1 and info["option"] == "explore"
    assert teacher.stats.fallbacks == 1
    # facing the door a "go to" mission names, `done` is the plan's own last step
    facing = _map_with({(3, 0): Door("red")}, agent=(3, 1), heading=3)
    [(probs, info)] = teacher.act([facing], missions=[parse_mission("go to the red door")])
    assert probs[DONE] == 1 and info["option"] == "done"


def test_memory_map_observation_carries_the_mission_and_the_vector_teacher_reads_it():
    env = MemoryMapObservation(gym.make("BabyAI-PickupLoc-v0"))
    obs, _ = env.reset(seed=3)
    assert decode(obs["mission"]) == start_mission(env)
    assert env.observation_space["mission"].contains(obs["mission"])
    # the paper's tasks keep their observation (and so their student network and figures)
    assert set(gym.make("TeacherWrappers/SimpleDoorKey-v0").observation_space.spaces) == {"image"}
    envs = gym.vector.SyncVectorEnv([lambda: MemoryMapObservation(gym.make("BabyAI-GoToObj-v0"))] * 2)
    vec = TeacherVectorWrapper(envs, planner="rules")
    obs, _ = vec.reset(seed=0)
    assert vec.teacher.text_style == "suite"
    assert all(info["text"].startswith("Mission: go to the ") for info in vec.last_infos)
    assert np.allclose(obs["teacher_probs"].sum(1), 1)


def test_instruction_kinds_are_exposed():
    mission = parse_mission("open the red door, then pick up a key")
    assert [instr.action for instr in mission.instrs] == [OPEN, PICK_UP]
    assert parse_mission("go to the red ball").instrs[0].action == GO_TO
    assert Mission(()).text == "explore"


def test_recorded_planner_falls_back_to_rules_and_counts_the_texts_its_table_lacks():
    env = TeacherWrapper(gym.make("MiniGrid-DoorKey-5x5-v0"), planner="recorded", planner_kwargs={"fallback": "rules"})
    rng = np.random.default_rng(0)
    table = env.teacher.planner.table
    for _ in range(3):
        obs, info = env.reset(seed=int(rng.integers(1000)))
        total, done = 0.0, False
        while not done:
            assert info["teacher"]["cache_hit"] == (info["teacher"]["text"] in table)
            probs = obs["teacher_probs"].astype(np.float64)
            obs, reward, terminated, truncated, info = env.step(int(rng.choice(7, p=probs / probs.sum())))
            total, done = total + reward, terminated or truncated
        assert total > 0
    stats = env.teacher_stats()
    assert stats["unknown_texts"] == len(env.teacher.unknown) > 0  # "<open door>" texts are not in the table
    assert all(text not in table for text in env.teacher.unknown)
    with pytest.raises(ValueError, match="unknown planner"):
        TeacherWrapper(gym.make("MiniGrid-DoorKey-5x5-v0"), planner="recorded", planner_kwargs={"fallback": "nope"})


def test_llm_prompts_for_suite_texts_carry_the_mission_and_the_admissible_plans():
    from teacher_wrappers.prompt import chat_messages

    text = "Mission: pick up the red ball. Agent sees <red ball>, <locked blue door>, holds <yellow key>."
    suite, paper = get_style("suite"), get_style("plain")
    plans = suite.admissible_plans(text)
    assert plans[0] == "explore" and suite_rule_plan(text) in plans
    assert all(suite.parse_plan(plan).unknown_steps == 0 for plan in plans)
    user = chat_messages(text, suite)[-1]["content"]
    assert user.startswith(text) and all(f"- {plan}" in user for plan in plans)
    assert suite.prompt_version != paper.prompt_version
    assert chat_messages("Agent sees <key>, holds <nothing>.")[-1]["content"] == "Agent sees <key>, holds <nothing>."


def _go_to_obj():
    return MemoryMapObservation(gym.make("BabyAI-GoToObj-v0"))


def test_teachers_in_worker_processes_read_the_mission_too():
    envs = make_teacher_vector_env([_go_to_obj] * 2, planner="rules", asynchronous=True, workers=1,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    try:
        assert envs.teacher.text_style == "suite"
        obs, _ = envs.reset(seed=0)
        rewards = 0.0
        for _ in range(40):  # GoToObj: one object in a room; the teacher's argmax reaches it in a few steps
            obs, reward, *_ = envs.step(obs["teacher_probs"].argmax(1))
            rewards += reward.sum()
        stats = envs.teacher_stats()
    finally:
        envs.close()
    assert rewards > 2 and stats["unparsed_steps"] == 0 and stats["steps"] >= 80
