"""The paper's text style, `llm4teach-v1`: "Agent sees <key>, <door>, holds <nothing>."

The reference's format, because recorded LLM answers are only valid for the exact text they were
given (change FORMAT_VERSION with the format). Keys, doors and goals are named; variants: "plain",
"colored" (colours canonicalised to color1, color2, ... in order of appearance: ColoredDoorKey) and
"numbered_doors" (door1, door2: TwoDoor). Open doors are `<open door>`.
"""

from __future__ import annotations

import re

import numpy as np
from minigrid.core.constants import IDX_TO_COLOR, OBJECT_TO_IDX, STATE_TO_IDX

from teacher_wrappers.memory import agent_state
from teacher_wrappers.mission import Mission
from teacher_wrappers.skills import DONE
from teacher_wrappers.styles.base import Description, TextStyle

FORMAT_VERSION = "llm4teach-v1"
PROMPT_VERSION = f"tw-prompt-1/{FORMAT_VERSION}"
TEXT_STYLES = ("plain", "colored", "numbered_doors")

SYSTEM = (
    "You plan for an agent in a grid world. Its task is to open a locked door. A locked door opens "
    "only for an agent holding the key of the door's colour, and the agent can hold one object at a "
    "time. Each turn you are told what the agent has seen and what it holds. The agent can do these "
    "steps: explore, go to <object>, pick up <object>, drop <object>, open <object>. Name objects "
    "exactly as in the description, with their angle brackets. Answer with one line that starts with "
    "'Plan:' followed by the steps, separated by commas."
)
EXAMPLE = ("Agent sees <key>, <door>, holds <nothing>.", "Plan: go to <key>, pick up <key>, go to <door>, open <door>")

KEY, DOOR, GOAL = OBJECT_TO_IDX["key"], OBJECT_TO_IDX["door"], OBJECT_TO_IDX["goal"]
_KINDS = (KEY, DOOR, GOAL)
_OPEN = STATE_TO_IDX["open"]
_ORDER = {kind: rank for rank, kind in enumerate(_KINDS)}
_NAMED_BYTE = bytes(kind in _KINDS for kind in range(256))  # translation table: object index -> 1 if named


class PaperStyle(TextStyle):
    """`llm4teach-v1` in one of its variants (TEXT_STYLES)."""

    VARIANTS = TEXT_STYLES
    format_version = FORMAT_VERSION
    prompt_version = PROMPT_VERSION
    system_prompt = SYSTEM
    example = EXAMPLE
    idle_action = DONE  # the reference's (a no-op on the paper's tasks, whose recorded figures depend on it)

    def __init__(self, variant: str = "plain"):
        if variant not in TEXT_STYLES:
            raise ValueError(f"unknown text style {variant!r}; valid: {', '.join(TEXT_STYLES)}")
        self.name = variant

    def describe(self, memory_map: np.ndarray, mission: Mission | None = None) -> Description:
        return describe(memory_map, self.name)

    def description_key(self, memory_map: np.ndarray, agent: tuple[int, int], mission: Mission | None = None):
        return description_key(memory_map, agent)

    def admissible_plans(self, text: str) -> list[str]:
        """Explore; fetch each key seen (dropping what is held first); open each closed door seen; go to a goal."""
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

    def rule_plan(self, text: str) -> str:
        return rule_plan(text)


def description_key(memory_map: np.ndarray, agent: tuple[int, int]) -> tuple[tuple[int, ...], bytes, int]:
    """Everything `describe` reads, as a cheap memo key: where the named objects are (flat cell indices),
    their (object, colour, state), and the agent's cell if it stands on one of them (it holds it).

    Walking, turning and seeing new walls or floor keep the key, so the text is looked up, not
    rebuilt. Keep in step with `describe` when it names more kinds of objects.
    """
    _, height, channels = memory_map.shape
    raw = memory_map.tobytes()
    named = raw[::channels].translate(_NAMED_BYTE)  # one byte per cell: 1 where a named object is
    where, cell = [], named.find(1)
    while cell >= 0:
        where.append(cell)
        cell = named.find(1, cell + 1)
    agent_index = agent[0] * height + agent[1]
    held = agent_index if named[agent_index] else -1
    return tuple(where), b"".join([raw[index * channels:index * channels + 3] for index in where]), held


def describe(memory_map: np.ndarray, style: str = "plain") -> Description:
    """Describe the keys, doors and goals ever seen, and what the agent holds."""
    if style not in TEXT_STYLES:
        raise ValueError(f"unknown text style {style!r}; valid: {', '.join(TEXT_STYLES)}")
    agent_pos, _ = agent_state(memory_map)
    kinds = memory_map[..., 0]
    held = None
    seen: list[tuple[str, tuple[int, int]]] = []
    door_number = 0
    xs, ys = np.nonzero((kinds == KEY) | (kinds == DOOR) | (kinds == GOAL))
    # Keys, then doors, then goals, each in (x, y) order: the reference's order.
    found = sorted((_ORDER[int(kinds[x, y])], int(x), int(y)) for x, y in zip(xs, ys))
    for rank, x, y in found:
        pos, kind = (x, y), _KINDS[rank]
        name = _name(kind, int(memory_map[x, y, 1]), style)
        if kind == DOOR and style == "numbered_doors":
            door_number += 1
            name = f"door{door_number}"
        if pos == agent_pos:
            held = name
        else:
            seen.append((name, pos))
    names = [name for name, _ in seen]
    if style == "colored":
        names, held = _canonical_colours(names, held)
    # An open door is no longer an obstacle; the reference tasks end when it opens, so this word
    # never reaches the recorded tables, but it tells planners on other MiniGrid tasks to move on.
    names = [f"open {name}" if memory_map[pos][0] == DOOR and memory_map[pos][2] == _OPEN else name
             for name, (_, pos) in zip(names, seen)]
    objects: dict[str, list[tuple[int, int]]] = {}
    for name, (_, pos) in zip(names, seen):
        objects.setdefault(name, []).append(pos)
    if held is not None:
        objects.setdefault(held, []).append(agent_pos)
    sees = ", ".join(f"<{name}>" for name in names) or "<nothing>"
    return Description(f"Agent sees {sees}, holds <{held or 'nothing'}>.", objects, held)


def _name(kind: int, colour: int, style: str) -> str:
    noun = {KEY: "key", DOOR: "door", GOAL: "goal"}[kind]
    if style == "colored" and kind != GOAL:
        return f"{IDX_TO_COLOR[colour]} {noun}"
    return noun


def _canonical_colours(names: list[str], held: str | None) -> tuple[list[str], str | None]:
    """Rename colours color1, color2, ... in order of first appearance in the text (held last)."""
    mapping: dict[str, str] = {}

    def canonical(name: str) -> str:
        colour, _, noun = name.partition(" ")
        if not noun:
            return name
        mapping.setdefault(colour, f"color{len(mapping) + 1}")
        return f"{mapping[colour]} {noun}"

    renamed = [canonical(name) for name in names]
    return renamed, canonical(held) if held else None


_SEES = re.compile(r"^Agent sees (?P<sees>.*), holds <(?P<held>[^>]*)>\.$")


def parse_text(text: str) -> tuple[list[str], str | None]:
    """Inverse of `describe` for planners that reason over the text: (seen names, held name)."""
    match = _SEES.match(text.strip())
    if not match:
        raise ValueError(f"not a description in format {FORMAT_VERSION}: {text!r}")
    seen = [name for name in re.findall(r"<([^>]*)>", match["sees"]) if name != "nothing"]
    held = match["held"] if match["held"] != "nothing" else None
    return seen, held


# -- the rules: the ideal planner for these texts ------------------------------------------------

def _colour(name: str) -> str | None:
    """'color1 key' -> 'color1'; an uncoloured name ('key', 'door2') matches every colour."""
    colour, _, noun = name.partition(" ")
    return colour if noun else None


def _matches(key: str, door: str) -> bool:
    return _colour(key) is None or _colour(door) is None or _colour(key) == _colour(door)


def rule_plan(text: str) -> str:
    """Find the key that fits, fetch it, open the door (or reach the goal)."""
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
