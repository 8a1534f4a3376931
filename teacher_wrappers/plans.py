"""Plan text <-> options.

A plan is a comma-separated list of steps such as "go to <key>, pick up <key>, open <door>".
Real LLM answers contain steps the skills cannot carry out ("go to east", "pick up <handle>",
"use <key>"); those are skipped and counted, never a crash. Which steps parse depends on the text
style: its skills (a step names one) and the object names it writes (`names`, a regex). A step is
a bare skill (one of the style's `bare` steps: "explore", "done", ...), `put <object> near <object>`,
or any other skill with one object ("go to <key>", "open <door>", a style's own "face <goal>").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import NamedTuple

SKILLS = ("explore", "go to", "pick up", "drop", "open")  # the paper's steps
# Object names of the paper's texts: "key", "color1 door", "door2", "goal", ...
PAPER_NAMES = r"(?:(?:color\d+|red|green|blue|purple|yellow|grey) )?(?:key|door\d*|goal|ball|box)"
BARE_STEPS = frozenset({"explore", "done"})  # skills named without an object


class Option(NamedTuple):
    skill: str
    target: str | None = None
    target2: str | None = None  # the second object of `put <target> near <target2>`

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(name for name in (self.target, self.target2) if name is not None)

    def __str__(self) -> str:
        if self.target2 is not None:
            return f"put <{self.target}> near <{self.target2}>"
        return self.skill if self.target is None else f"{self.skill} <{self.target}>"


class ParsedPlan(NamedTuple):
    options: tuple[Option, ...]
    unknown_steps: int


def _normalise(step: str) -> str:
    step = re.sub(r"\s+", " ", step.strip().lower()).rstrip(".").strip()
    step = re.sub(r"^(?:then|and) ", "", step)
    step = re.sub(r"<\s*(.*?)\s*>", r"<\1>", step)
    return _THE.sub(lambda match: match[1] or " ", step)  # "go to the <key>"; names keep theirs ("in the way")


_THE = re.compile(r"(<[^<>]*>)| the ")


@functools.lru_cache(maxsize=16)
def _grammar(skills: frozenset[str], names: str, bare: frozenset[str]) -> tuple[re.Pattern | None, re.Pattern | None]:
    """(one-object step, put-near step) patterns for the skills a style has."""
    one = sorted((re.escape(skill) for skill in skills if skill not in bare and skill != "put near"), key=len,
                 reverse=True)
    step = re.compile(rf"^(?P<skill>{'|'.join(one)}) <(?P<target>{names})>(?: with <[^>]*>)?$") if one else None
    put = re.compile(rf"^put <(?P<target>{names})> (?:near|next to) <(?P<target2>{names})>$") \
        if "put near" in skills else None
    return step, put


def parse_step(step: str, skills: Iterable[str] = SKILLS, names: str = PAPER_NAMES,
               bare: frozenset[str] = BARE_STEPS) -> Option | None:
    """One step of a plan as an Option, or None if none of `skills` can carry it out."""
    skills = frozenset(skills)
    step = _normalise(step)
    if "explore" in skills and (step == "explore" or step.startswith("explore ")):
        return Option("explore")
    if step in bare and step in skills:
        return Option(step)
    one, put = _grammar(skills, names, bare)
    if put is not None and (match := put.match(step)):
        return Option("put near", match["target"], match["target2"])
    if one is not None and (match := one.match(step)):
        return Option(match["skill"], match["target"])
    return None


@functools.lru_cache(maxsize=4096)
def parse_plan(plan: str, skills: frozenset[str] = frozenset(SKILLS), names: str = PAPER_NAMES,
               bare: frozenset[str] = BARE_STEPS) -> ParsedPlan:
    """A plan's options (of `skills`, naming objects that match `names`; `bare` ones name none) and how
    many steps fit none."""
    options, unknown = [], 0
    for step in plan.split(","):
        if not step.strip():
            continue
        option = parse_step(step, skills, names, bare)
        if option is None:
            unknown += 1
        else:
            options.append(option)
    return ParsedPlan(tuple(options), unknown)


def format_plan(options: list[Option] | tuple[Option, ...]) -> str:
    return ", ".join(str(option) for option in options)
