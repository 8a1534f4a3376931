"""Memory map -> symbolic facts -> the text shown to the planner.

The text format is the reference's ("Agent sees <key>, <door>, holds <nothing>."), because recorded
LLM answers are only valid for the exact text they were given. Change FORMAT_VERSION with the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from minigrid.core.constants import IDX_TO_COLOR, OBJECT_TO_IDX, STATE_TO_IDX

FORMAT_VERSION = "llm4teach-v1"
TEXT_STYLES = ("plain", "colored", "numbered_doors")

KEY, DOOR, GOAL = OBJECT_TO_IDX["key"], OBJECT_TO_IDX["door"], OBJECT_TO_IDX["goal"]
_KINDS = (KEY, DOOR, GOAL)
_OPEN = STATE_TO_IDX["open"]
_ORDER = {kind: rank for rank, kind in enumerate(_KINDS)}


@dataclass
class Description:
    """What the planner is told, and where each named object is on the map."""

    text: str
    objects: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    held: str | None = None


def agent_state(memory_map: np.ndarray) -> tuple[tuple[int, int], int]:
    """(agent position, heading) read off channel 3 of a memory map."""
    headings = memory_map[..., 3]
    count = np.count_nonzero(headings)
    if count != 1:
        raise ValueError(f"a memory map must mark exactly one agent cell, found {count}")
    x, y = divmod(int(headings.argmax()), headings.shape[1])
    return (x, y), int(headings[x, y]) - 1


_DESCRIBED = np.isin(np.arange(256), _KINDS)  # lookup table: object index -> named in descriptions


def description_key(memory_map: np.ndarray, agent: tuple[int, int]) -> tuple[bytes, bytes, int]:
    """Everything `describe` reads, as a cheap memo key: where the named objects are, their
    (object, colour, state), and the agent's cell if it stands on one of them (it holds it).

    Walking, turning and seeing new walls or floor keep the key, so the text is looked up, not
    rebuilt. Keep in step with `describe` when it names more kinds of objects.
    """
    kinds = memory_map[..., 0]
    where = np.flatnonzero(_DESCRIBED[kinds])
    height = kinds.shape[1]
    agent_index = agent[0] * height + agent[1]
    held = agent_index if _DESCRIBED[kinds[agent]] else -1
    return where.tobytes(), memory_map.reshape(-1, memory_map.shape[-1])[where, :3].tobytes(), held


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
