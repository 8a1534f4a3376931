import json
from pathlib import Path

import pytest

from teacher_wrappers.planners import RecordedPlanner, RecordedTableError, make_planner
from teacher_wrappers.planners.recorded import (
    convert_reference_file,
    default_table_path,
)
from teacher_wrappers.styles.paper import rule_plan


def test_unknown_planner_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown planner 'gpt9'.*hf, openai, recorded, rules"):
        make_planner("gpt9")


def test_recorded_replays_the_reference_distributions():
    planner = make_planner("recorded", task="SimpleDoorKey")
    [answer] = planner.plan(["Agent sees <key>, <door>, holds <nothing>."])
    plans = dict(answer)
    assert plans["go to <key>, pick up <key>, go to <door>, open <door>"] == pytest.approx(0.84)
    assert sum(plans.values()) == pytest.approx(1.0)
    assert planner.queries == 1 and planner.fallbacks == 0


def test_lava_task_uses_the_simple_table_and_unknown_texts_fall_back_to_explore():
    planner = make_planner("recorded", task="LavaDoorKey")
    texts = ["Agent sees <door>, holds <key>.", "Agent sees <goal>, holds <nothing>."]
    known, unknown = planner.plan(texts)
    assert dict(known)["go to <door>, open <door> with <key>"] == pytest.approx(0.62)
    assert unknown == [("explore", 1.0)]
    assert planner.fallbacks == 1


def test_shipped_table_is_the_reference_data_converted(tmp_path):
    # the tables as the paper's code publishes them (its reference layout), kept with the tests
    reference = Path(__file__).parent / "data" / "llm4teach_recorded_plans.json"
    convert_reference_file(reference, tmp_path / "converted.json")
    assert json.loads((tmp_path / "converted.json").read_text()) == json.loads(default_table_path().read_text())


@pytest.mark.parametrize("content,match", [
    ("{not json", "cannot read"),
    ('{"tables": {}}', "format_version"),
    ('{"format_version": "llm4teach-v1", "tables": {"T": {"Agent sees <nothing>, holds <nothing>.": {}}}}',
     r"table 'T', entry 'Agent sees <nothing>, holds <nothing>\.'"),
    ('{"format_version": "llm4teach-v1", "tables": {"T": {"x": {"explore": -1}}}}', "invalid probability"),
    ('{"format_version": "llm4teach-v1", "tables": {"T": {"x": {"explore": 0}}}}', "sum to zero"),
])
def test_malformed_tables_name_the_file_and_entry(tmp_path, content, match):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(RecordedTableError, match=match) as error:
        RecordedPlanner(path=path, table="T")
    assert str(path) in str(error.value)


def test_missing_table_is_named():
    with pytest.raises(ValueError, match="no table 'Nope'"):
        RecordedPlanner(table="Nope")


@pytest.mark.parametrize("text,plan", [
    ("Agent sees <nothing>, holds <nothing>.", "explore"),
    ("Agent sees <door>, holds <nothing>.", "explore"),
    ("Agent sees <key>, <door>, holds <nothing>.", "go to <key>, pick up <key>"),
    ("Agent sees <door>, holds <key>.", "go to <door>, open <door>"),
    ("Agent sees <color1 key>, <color2 key>, <color2 door>, holds <nothing>.",
     "go to <color2 key>, pick up <color2 key>"),
    ("Agent sees <color1 key>, <color1 door>, holds <color2 key>.",
     "drop <color2 key>, go to <color1 key>, pick up <color1 key>"),
    ("Agent sees <color1 door>, holds <color2 key>.", "explore"),
    ("Agent sees <door1>, <door2>, holds <key>.", "go to <door1>, open <door1>"),
    ("Agent sees <key>, <door>, <goal>, holds <key>.", "go to <goal>"),
    ("Agent sees <open door>, holds <key>.", "explore"),
])
def test_rules(text, plan):
    assert rule_plan(text) == plan
    assert make_planner("rules").plan([text]) == [[(plan, 1.0)]]
