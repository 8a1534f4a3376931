"""Damaged inputs of the library: a corrupt answer cache, recorded tables that are not distributions."""

import json
import sqlite3

import pytest

from teacher_wrappers.cache import AnswerCache
from teacher_wrappers.planners import RecordedPlanner, RecordedTableError

TEXT = "Agent sees <key>, <door>, holds <nothing>."


def test_recorded_tables_must_sum_to_one(tmp_path):
    for total, answers in ((0.6, {"explore": 0.6}), (8, {"explore": 4, "go to <key>": 4})):
        path = tmp_path / f"sum{total}.json"
        path.write_text(json.dumps({"format_version": "llm4teach-v1", "tables": {"T": {TEXT: answers}}}))
        with pytest.raises(RecordedTableError) as error:
            RecordedPlanner(path=path, table="T")
        message = str(error.value)
        assert str(path) in message and TEXT in message and f"sum to {total}, not 1" in message


def test_recorded_tables_rounded_to_two_decimals_are_rescaled(tmp_path):
    path = tmp_path / "rounded.json"
    answers = {"explore": 0.33, "go to <key>, pick up <key>": 0.33, "go to <door>": 0.33}  # sums to 0.99
    path.write_text(json.dumps({"format_version": "llm4teach-v1", "tables": {"T": {TEXT: answers}}}))
    [plans] = RecordedPlanner(path=path, table="T").plan([TEXT])
    assert sum(prob for _, prob in plans) == pytest.approx(1.0) and len(plans) == 3


def _filled_cache(path):
    cache = AnswerCache(path)
    for i in range(300):
        cache.put("openai", "m", "v1", f"text {i} " + "x" * 200, {"n": 1}, [("explore", 1.0)])
    cache._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache._connection.close()


@pytest.mark.parametrize("damage", ["random bytes", "truncated"])
def test_a_corrupt_cache_is_moved_aside_and_rebuilt(tmp_path, damage):
    path = tmp_path / "answers.sqlite"
    if damage == "random bytes":
        path.write_bytes(bytes(range(256)) * 64)
    else:
        _filled_cache(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    original = path.read_bytes()
    cache = AnswerCache(path)
    with pytest.warns(UserWarning, match=f"answer cache {path} is not a readable SQLite database"):
        assert cache.get("openai", "m", "v1", TEXT, {"n": 1}) is None
    [aside] = tmp_path.glob("answers.sqlite.corrupt-*")
    assert aside.read_bytes() == original  # nothing lost: the damaged file is kept for inspection
    cache.put("openai", "m", "v1", TEXT, {"n": 1}, [("explore", 1.0)])
    assert AnswerCache(path).get("openai", "m", "v1", TEXT, {"n": 1}) == [("explore", 1.0)]


def test_errors_of_an_open_cache_name_its_file(tmp_path):
    path = tmp_path / "answers.sqlite"
    cache = AnswerCache(path)
    cache.put("openai", "m", "v1", TEXT, {"n": 1}, [("explore", 1.0)])
    cache._connection.execute("DROP TABLE answers")  # a file changed under a running process
    with pytest.raises(sqlite3.DatabaseError, match=f"answer cache {path}: no such table"):
        cache.get("openai", "m", "v1", TEXT, {"n": 1})
