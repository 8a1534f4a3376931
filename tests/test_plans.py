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


def test_every_shipped_plan_parses_but_for_the_llm_mistakes_it_records():
    tables = json.loads(default_table_path().read_text())["tables"]
    plans = {name: [plan for answers in table.values() for plan in answers] for name, table in tables.items()}
    unknown = {name: sorted(step.strip() for plan in table for step in plan.split(",")
                            if step.strip() and parse_step(step) is None) for name, table in plans.items()}
    simple = ["pick up <handle>", "use <key>", "use <key>"]  # LavaDoorKey has SimpleDoorKey's answers
    assert unknown == {"SimpleDoorKey": simple, "LavaDoorKey": simple, "ColoredDoorKey": ["go to east"], "TwoDoor": []}
    for name, table in plans.items():  # a plan keeps every other step, in order
        for plan in table:
            parsed = parse_plan(plan)
            assert parsed.unknown_steps == sum(step.strip() in unknown[name] for step in plan.split(","))
            assert parsed.options == tuple(option for option in map(parse_step, plan.split(",")) if option)


def test_format_round_trips():
    plan = "go to <color1 key>, pick up <color1 key>, explore"
    assert format_plan(parse_plan(plan).options) == plan
    assert parse_step("open <door2>") == Option("open", "door2")
    assert parse_step("open the window") is None
