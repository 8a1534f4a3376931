import json

import pytest

from teacher_wrappers.planners.recorded import default_table_path
from teacher_wrappers.plans import Option, format_plan, parse_plan, parse_step


def test_reference_plans_parse_into_options():
    assert parse_plan("go to <key>, pick up <key>, go to <door>, open <door>").options == (
        Option("go to", "key"), Option("pick up", "key"), Option("go to", "door"), Option("open", "door"))
    assert parse_plan("explore").options == (Option("explore"),)
    assert parse_plan("drop <color2 key>, pick up <color1 key>").options == (
        Option("drop", "color2 key"), Option("pick up", "color1 key"))


@pytest.mark.parametrize("plan,options,unknown", [
    ("go to east", (), 1),
    ("go to <door>, pick up <handle>, use <key>", (Option("go to", "door"),), 2),
    ("go to <key>, go to <door>, use <key>", (Option("go to", "key"), Option("go to", "door")), 1),
    (" pick up <color1 key>", (Option("pick up", "color1 key"),), 0),
    ("go to <door>, open <door> with <key>", (Option("go to", "door"), Option("open", "door")), 0),
    ("Go to the < key >,  pick up <key>.", (Option("go to", "key"), Option("pick up", "key")), 0),
    ("", (), 0),
    ("dance wildly, , explore the room", (Option("explore"),), 1),
])
def test_llm_mistakes_are_skipped_and_counted(plan, options, unknown):
    parsed = parse_plan(plan)
    assert parsed.options == options
    assert parsed.unknown_steps == unknown


def test_every_shipped_plan_parses_without_crashing():
    tables = json.loads(default_table_path().read_text())["tables"]
    unknown = sum(parse_plan(plan).unknown_steps for table in tables.values() for answers in table.values()
                  for plan in answers)
    # 'go to east' (ColoredDoorKey), '<handle>' and 'use <key>' x2 (SimpleDoorKey, shared by LavaDoorKey)
    assert unknown == 1 + 3 * 2


def test_format_round_trips():
    plan = "go to <color1 key>, pick up <color1 key>, explore"
    assert format_plan(parse_plan(plan).options) == plan
    assert parse_step("open <door2>") == Option("open", "door2")
    assert parse_step("open the window") is None
