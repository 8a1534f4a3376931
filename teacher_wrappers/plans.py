"""Plan text <-> options.

A plan is a comma-separated list of steps such as "go to <key>, pick up <key>, open <door>".
Real LLM answers contain steps the skills cannot carry out ("go to east", "pick up <handle>",
"use <key>"); those are skipped and counted, never a crash.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from teacher_wrappers.describe import parse_text
from teacher_wrappers.describe_suite import is_suite_text
from teacher_wrappers.planners.suite_rules import suite_admissible_plans

SKILLS = ("explore", "go to", "pick up", "drop", "open")

_OBJECT = r"(?:(?:color\d+|red|green|blue|purple|yellow|grey) )?(?:key|door\d*|goal|ball|box)"
_STEP = re.compile(rf"^(?P<skill>go to|pick up|drop|open) <(?P<target>{_OBJECT})>(?: with <[^>]*>)?$")


class Option(NamedTuple):
    skill: str
    target: str | None = None

    def __str__(self) -> str:
        return self.skill if self.target is None else f"{self.skill} <{self.target}>"


class ParsedPlan(NamedTuple):
    options: tuple[Option, ...]
    unknown_steps: int


def _normalise(step: str) -> str:
    step = re.sub(r"\s+", " ", step.strip().lower()).rstrip(".").strip()
    step = re.sub(r"^(?:then|and) ", "", step)
    return re.sub(r"<\s*(.*?)\s*>", r"<\1>", step).replace(" the ", " ")


def parse_step(step: str) -> Option | None:
    """One step of a plan as an Option, or None if no skill can carry it out."""
    step = _normalise(step)
    if step == "explore" or step.startswith("explore "):
        return Option("explore")
    match = _STEP.match(step)
    return Option(match["skill"], match["target"]) if match else None


@functools.lru_cache(maxsize=4096)
def parse_plan(plan: str) -> ParsedPlan:
    options, unknown = [], 0
    for step in plan.split(","):
        if not step.strip():
            continue
        option = parse_step(step)
        if option is None:
            unknown += 1
        else:
            options.append(option)
    return ParsedPlan(tuple(options), unknown)


def format_plan(options: list[Option] | tuple[Option, ...]) -> str:
    return ", ".join(str(option) for option in options)


def admissible_plans(text: str) -> list[str]:
    """The plans a planner may choose from for a description, for scoring by likelihood.

    Explore; fetch each key seen (dropping what is held first); open each closed door seen; go to a goal.
    Suite texts (they start with "Mission:") get `suite_admissible_plans`.
    """
    if is_suite_text(text):
        return suite_admissible_plans(text)
    seen, held = parse_text(text)
    plans = ["explore"]
    for name in seen:
        if name.endswith("key"):
            fetch = f"go to <{name}>, pick up <{name}>"
            plans.append(f"drop <{held}>, {fetch}" if held else fetch)
        elif "door" in name and not name.startswith("open "):
            plans.append(f"go to <{name}>, open <{name}>")
        elif name == "goal":
            plans.append("go to <goal>")
    return plans
