import json

import pytest
from helpers import place_agent, put, room_map

from teacher_wrappers.styles.paper import describe, parse_text
from teacher_wrappers.planners.recorded import default_table_path

# (style, objects seen as (kind, colour), carried (kind, colour) or None) -> text in the recorded tables
CASES = [
    ("plain", [], None, "Agent sees <nothing>, holds <nothing>."),
    ("plain", [("door", "red")], None, "Agent sees <door>, holds <nothing>."),
    ("plain", [("key", "red")], None, "Agent sees <key>, holds <nothing>."),
    ("plain", [], ("key", "red"), "Agent sees <nothing>, holds <key>."),
    ("plain", [("door", "red")], ("key", "red"), "Agent sees <door>, holds <key>."),
    ("plain", [("key", "red"), ("door", "red")], None, "Agent sees <key>, <door>, holds <nothing>."),
    ("colored", [], None, "Agent sees <nothing>, holds <nothing>."),
    ("colored", [], ("key", "red"), "Agent sees <nothing>, holds <color1 key>."),
    ("colored", [("key", "blue")], None, "Agent sees <color1 key>, holds <nothing>."),
    ("colored", [("door", "blue")], None, "Agent sees <color1 door>, holds <nothing>."),
    ("colored", [("door", "blue")], ("key", "blue"), "Agent sees <color1 door>, holds <color1 key>."),
    ("colored", [("door", "blue")], ("key", "red"), "Agent sees <color1 door>, holds <color2 key>."),
    ("colored", [("key", "blue")], ("key", "red"), "Agent sees <color1 key>, holds <color2 key>."),
    ("colored", [("key", "red"), ("key", "blue")], None, "Agent sees <color1 key>, <color2 key>, holds <nothing>."),
    ("colored", [("key", "red"), ("door", "blue")], None, "Agent sees <color1 key>, <color2 door>, holds <nothing>."),
    ("colored", [("key", "blue"), ("door", "blue")], None, "Agent sees <color1 key>, <color1 door>, holds <nothing>."),
    ("colored", [("key", "blue"), ("door", "blue")], ("key", "red"),
     "Agent sees <color1 key>, <color1 door>, holds <color2 key>."),
    ("colored", [("key", "red"), ("door", "blue")], ("key", "blue"),
     "Agent sees <color1 key>, <color2 door>, holds <color2 key>."),
    ("colored", [("key", "red"), ("key", "blue"), ("door", "blue")], None,
     "Agent sees <color1 key>, <color2 key>, <color2 door>, holds <nothing>."),
    ("colored", [("key", "blue"), ("key", "red"), ("door", "blue")], None,
     "Agent sees <color1 key>, <color2 key>, <color1 door>, holds <nothing>."),
    ("numbered_doors", [], None, "Agent sees <nothing>, holds <nothing>."),
    ("numbered_doors", [("key", "red")], None, "Agent sees <key>, holds <nothing>."),
    ("numbered_doors", [("door", "red")], None, "Agent sees <door1>, holds <nothing>."),
    ("numbered_doors", [], ("key", "red"), "Agent sees <nothing>, holds <key>."),
    ("numbered_doors", [("door", "red")], ("key", "red"), "Agent sees <door1>, holds <key>."),
    ("numbered_doors", [("key", "red"), ("door", "red")], None, "Agent sees <key>, <door1>, holds <nothing>."),
    ("numbered_doors", [("door", "red"), ("door", "red")], None, "Agent sees <door1>, <door2>, holds <nothing>."),
    ("numbered_doors", [("key", "red"), ("door", "red"), ("door", "red")], None,
     "Agent sees <key>, <door1>, <door2>, holds <nothing>."),
    ("numbered_doors", [("door", "red"), ("door", "red")], ("key", "red"),
     "Agent sees <door1>, <door2>, holds <key>."),
]

# Keys and doors are listed in (x, y) order, keys first: put them on the diagonal in listed order.
POSITIONS = [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("style,seen,carried,text", CASES)
def test_describe_hand_built_maps(style, seen, carried, text):
    memory = room_map()
    for (kind, colour), pos in zip(seen, POSITIONS):
        put(memory, pos, kind, colour, "locked" if kind == "door" else None)
    place_agent(memory, (5, 5), 0, carrying=carried)
    description = describe(memory, style)
    assert description.text == text
    assert parse_text(text) == (list(description.objects)[: len(seen)] if seen else [], description.held)


def test_every_recorded_text_has_a_case():
    tables = json.loads(default_table_path().read_text())["tables"]
    table_for_style = {"plain": "SimpleDoorKey", "colored": "ColoredDoorKey", "numbered_doors": "TwoDoor"}
    covered = {(table_for_style[style], text) for style, _, _, text in CASES}
    recorded = {(task, text) for task in table_for_style.values() for text in tables[task]}
    assert recorded <= covered


def test_object_positions_and_held_object():
    memory = room_map()
    put(memory, (2, 3), "key", "blue")
    put(memory, (4, 1), "key", "red")
    put(memory, (6, 3), "door", "blue", "locked")
    place_agent(memory, (3, 3), 2, carrying=("key", "yellow"))
    description = describe(memory, "colored")
    assert description.objects == {"color1 key": [(2, 3)], "color2 key": [(4, 1)], "color1 door": [(6, 3)],
                                   "color3 key": [(3, 3)]}
    assert description.held == "color3 key"


def test_goal_is_described_in_plain_style():
    memory = room_map()
    put(memory, (4, 4), "goal", "green")
    place_agent(memory, (1, 1), 0)
    assert describe(memory).text == "Agent sees <goal>, holds <nothing>."


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="text style"):
        describe(room_map(), "fancy")
    with pytest.raises(ValueError, match="exactly one agent"):
        describe(room_map())
    with pytest.raises(ValueError, match="not a description"):
        parse_text("The agent is happy.")


def test_open_doors_are_marked_so_planners_move_on():
    memory = room_map()
    put(memory, (2, 2), "door", "red", "open")
    put(memory, (4, 4), "door", "blue", "locked")
    place_agent(memory, (1, 1), 0, carrying=("key", "red"))
    assert describe(memory, "colored").text == "Agent sees <open color1 door>, <color2 door>, holds <color1 key>."
    assert describe(memory, "numbered_doors").text == "Agent sees <open door1>, <door2>, holds <key>."
