"""A hand-written planner: the ideal-planner reference and the zero-cost baseline. Not an LLM."""

from __future__ import annotations

from collections.abc import Sequence

from teacher_wrappers.describe import parse_text
from teacher_wrappers.describe_suite import is_suite_text
from teacher_wrappers.planners.base import PlanDistribution, Planner
from teacher_wrappers.planners.suite_rules import suite_rule_plan


def _colour(name: str) -> str | None:
    """'color1 key' -> 'color1'; an uncoloured name ('key', 'door2') matches every colour."""
    colour, _, noun = name.partition(" ")
    return colour if noun else None


def _matches(key: str, door: str) -> bool:
    return _colour(key) is None or _colour(door) is None or _colour(key) == _colour(door)


def rule_plan(text: str) -> str:
    seen, held = parse_text(text)
    keys = [name for name in seen if name.endswith("key")]
    doors = [name for name in seen if "door" in name and not name.startswith("open ")]
    if "goal" in seen:
        return "go to <goal>"
    if held and held.endswith("key"):
        door = next((d for d in doors if _matches(held, d)), None)
        if door:
            return f"go to <{door}>, open <{door}>"
        right_key = next((k for k in keys for d in doors if _matches(k, d)), None)
        if right_key:
            return f"drop <{held}>, go to <{right_key}>, pick up <{right_key}>"
        return "explore"
    if keys:
        key = next((k for k in keys for d in doors if _matches(k, d)), keys[0])
        return f"go to <{key}>, pick up <{key}>"
    return "explore"


class RulesPlanner(Planner):
    """Deterministic rules over the description: find the key that fits, fetch it, open the door.

    Texts of the suite style (`describe_suite`, they start with "Mission:") get `suite_rule_plan`.
    """

    name = "rules"

    def __init__(self, task: str | None = None):
        super().__init__()

    def plan(self, texts: Sequence[str]) -> list[PlanDistribution]:
        self.queries += len(texts)
        return [[(suite_rule_plan(text) if is_suite_text(text) else rule_plan(text), 1.0)] for text in texts]
