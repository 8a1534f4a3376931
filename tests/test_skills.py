import numpy as np
import pytest
from helpers import place_agent, put, room_map

from teacher_wrappers.skills import (
    DROP,
    FORWARD,
    LEFT,
    PICKUP,
    RIGHT,
    TOGGLE,
    MapView,
    drop,
    drop_aside,
    explore,
    go_to,
    open_door,
    pick_up,
)

EAST, SOUTH, WEST, NORTH = range(4)
STEP = {EAST: (1, 0), SOUTH: (0, 1), WEST: (-1, 0), NORTH: (0, -1)}


def follow(memory, skill, targets, limit=60):
    """Run a skill on a static map, moving the agent as MiniGrid would; returns the final action."""
    pos = tuple(int(v) for v in np.argwhere(memory[..., 3] > 0)[0])
    heading = int(memory[pos][3]) - 1
    visited = []
    for _ in range(limit):
        place_agent(memory, pos, heading)
        action = skill(MapView(memory), targets)
        if action in (None, PICKUP, DROP, TOGGLE):
            return action, pos, heading, visited
        if action == LEFT:
            heading = (heading - 1) % 4
        elif action == RIGHT:
            heading = (heading + 1) % 4
        else:
            assert action == FORWARD
            pos = (pos[0] + STEP[heading][0], pos[1] + STEP[heading][1])
            visited.append(pos)
    raise AssertionError("skill did not finish")


def test_go_to_walks_around_walls_and_lava_and_faces_the_object():
    memory = room_map(9, 9)
    for y in range(1, 6):
        put(memory, (4, y), "wall")  # the only way through is the gap at (4, 6) ...
    for cell in [(4, 7), (3, 7), (5, 7)]:
        put(memory, cell, "lava", "red")  # ... between the wall and a row of lava
    put(memory, (7, 1), "key", "red")
    place_agent(memory, (1, 1), EAST)
    action, pos, heading, visited = follow(memory, go_to, {(7, 1)})
    assert action is None  # arrived
    assert (pos[0] + STEP[heading][0], pos[1] + STEP[heading][1]) == (7, 1)
    assert (4, 6) in visited
    assert not {(4, 7), (3, 7), (5, 7)} & set(visited)


def test_go_to_an_unreachable_object_gives_no_action():
    memory = room_map(7, 7)
    for y in range(1, 6):
        put(memory, (3, y), "lava", "red")
    put(memory, (5, 3), "key", "red")
    place_agent(memory, (1, 3), EAST)
    assert go_to(MapView(memory), {(5, 3)}) is None


def test_unseen_cells_are_never_walked_on():
    memory = room_map(7, 7)
    memory[3, 1:6, :] = 0  # a column never seen
    put(memory, (5, 3), "key", "red")
    place_agent(memory, (1, 3), EAST)
    assert go_to(MapView(memory), {(5, 3)}) is None


def test_go_to_a_goal_stands_on_it():
    memory = room_map(7, 7)
    put(memory, (5, 5), "goal", "green")
    place_agent(memory, (1, 1), SOUTH)
    action, pos, _, _ = follow(memory, go_to, {(5, 5)})
    assert action is None and pos == (5, 5)


def test_explore_faces_unseen_cells_until_none_is_left():
    memory = room_map(7, 7)
    memory[4:6, 4:6, :] = 0
    place_agent(memory, (1, 1), NORTH)
    action, pos, heading, _ = follow(memory, explore, set())
    front = (pos[0] + STEP[heading][0], pos[1] + STEP[heading][1])
    assert action is None or memory[front][0] == 0
    full = room_map(7, 7)
    place_agent(full, (3, 3), EAST)
    assert explore(MapView(full), set()) is None


def test_pick_up_goes_to_the_key_then_picks_it_up_and_is_done_when_held():
    memory = room_map(7, 7)
    put(memory, (5, 5), "key", "red")
    place_agent(memory, (1, 1), EAST)
    action, *_ = follow(memory, pick_up, {(5, 5)})
    assert action == PICKUP
    place_agent(memory, (2, 2), EAST, carrying=("key", "red"))
    assert pick_up(MapView(memory), {(2, 2)}) is None


def test_open_toggles_a_locked_door_and_is_done_when_open():
    memory = room_map(7, 7)
    put(memory, (6, 3), "door", "red", "locked")
    place_agent(memory, (1, 1), WEST, carrying=("key", "red"))
    action, *_ = follow(memory, open_door, {(6, 3)})
    assert action == TOGGLE
    put(memory, (6, 3), "door", "red", "open")
    assert open_door(MapView(memory), {(6, 3)}) is None


def test_drop_avoids_the_doorway_and_is_done_when_not_holding():
    memory = room_map(7, 7)
    put(memory, (6, 3), "door", "blue", "locked")
    place_agent(memory, (4, 3), EAST, carrying=("key", "red"))  # front (5, 3) is the doorway
    assert drop(MapView(memory), {(4, 3)}) in (LEFT, RIGHT)
    place_agent(memory, (4, 3), SOUTH, carrying=("key", "red"))
    assert drop(MapView(memory), {(4, 3)}) == DROP
    place_agent(memory, (4, 3), SOUTH)
    assert drop(MapView(memory), {(1, 1)}) is None


def test_drop_aside_never_walls_the_agent_in():
    # the agent in a corner, a box to its east, facing north: a key dropped there would shut it in
    memory = room_map(7, 7)
    put(memory, (2, 5), "box", "blue")
    place_agent(memory, (1, 5), NORTH, carrying=("key", "red"))
    assert drop_aside(MapView(memory), {(1, 5)}) not in (DROP, None)  # it walks on to drop elsewhere
    place_agent(memory, (1, 4), NORTH, carrying=("key", "red"))  # one cell up, the way south stays open
    assert drop_aside(MapView(memory), {(1, 4)}) == DROP


@pytest.mark.parametrize("skill", [go_to, pick_up, open_door])
def test_skills_with_no_target_do_nothing(skill):
    memory = room_map(7, 7)
    place_agent(memory, (3, 3), EAST)
    assert skill(MapView(memory), set()) is None
