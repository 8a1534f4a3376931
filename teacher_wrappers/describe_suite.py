"""The text style for the wider MiniGrid/BabyAI suite: every object with its colour, and the mission.

    Mission: pick up the red box. Agent sees <yellow key>, <grey ball in the way>, <locked yellow door>, holds <nothing>.

Objects are keys, balls, boxes, doors (with their state: locked, closed or open), the goal and lava,
each name listed once, in MiniGrid's object order. Two qualifiers are facts a text planner cannot
work out alone: "on your left" (and the other location words) marks the objects a mission's
location words pick out, seen from the start pose; "in the way" marks a key, ball or box on a cell
next to a door, where it stops the agent from walking through. The reference style (`describe.py`,
`llm4teach-v1`) stays for the paper's tasks, whose recorded answers depend on it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX

from teacher_wrappers.describe import Description, agent_state
from teacher_wrappers.mission import LOC_PHRASES, Mission, ObjDesc, mission_of

SUITE_FORMAT_VERSION = "tw-suite-v1"
SUITE_STYLE = "suite"

_NAMED = ("key", "ball", "box", "door", "goal", "lava")  # reading order of the text
_RANK = {OBJECT_TO_IDX[kind]: rank for rank, kind in enumerate(_NAMED)}
_DOOR, _GOAL, _LAVA = OBJECT_TO_IDX["door"], OBJECT_TO_IDX["goal"], OBJECT_TO_IDX["lava"]
_MOVABLE = {OBJECT_TO_IDX[kind] for kind in ("key", "ball", "box")}
DOOR_STATES = {STATE_TO_IDX["open"]: "open", STATE_TO_IDX["closed"]: "closed", STATE_TO_IDX["locked"]: "locked"}
IN_THE_WAY = "in the way"
_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1))


class ObjName(NamedTuple):
    """A name of the suite text, split into its parts."""

    type: str
    color: str | None = None
    state: str | None = None  # doors only
    loc: str | None = None
    in_the_way: bool = False

    def __str__(self) -> str:
        words = [w for w in (self.state, self.color, self.type) if w]
        if self.loc:
            words.append(LOC_PHRASES[self.loc])
        if self.in_the_way:
            words.append(IN_THE_WAY)
        return " ".join(words)

    def fits(self, desc: ObjDesc) -> bool:
        """Whether this object is one the mission's description names."""
        return ((desc.type is None or desc.type == self.type) and (desc.color is None or desc.color == self.color)
                and (desc.loc is None or desc.loc == self.loc) and self.type not in ("goal", "lava"))


def describe_suite(memory_map: np.ndarray, mission: Mission) -> Description:
    """Describe every object ever seen, what the agent holds, and the mission."""
    agent_pos, _ = agent_state(memory_map)
    kinds = memory_map[..., 0]
    doors = {(int(x), int(y)) for x, y in zip(*np.nonzero(kinds == _DOOR))}
    held = None
    found = []
    for x, y in zip(*np.nonzero(np.isin(kinds, list(_RANK)))):
        pos = (int(x), int(y))
        name = _object_name(memory_map, pos, mission, doors)
        if pos == agent_pos:
            held = name._replace(loc=None, in_the_way=False)
        else:
            found.append((_RANK[int(kinds[pos])], pos, name))
    objects: dict[str, list[tuple[int, int]]] = {}
    for _, pos, name in sorted(found):
        objects.setdefault(str(name), []).append(pos)
    sees = ", ".join(f"<{name}>" for name in objects) or "<nothing>"
    if held is not None:  # skills find the held object at the agent's cell
        objects.setdefault(str(held), []).append(agent_pos)
    text = f"Mission: {mission.text}. Agent sees {sees}, holds <{held or 'nothing'}>."
    return Description(text, objects, str(held) if held else None)


def _object_name(memory_map: np.ndarray, pos: tuple[int, int], mission: Mission, doors: set) -> ObjName:
    kind, color, state = (int(v) for v in memory_map[pos][:3])
    name = ObjName(IDX_TO_OBJECT[kind], None if kind in (_GOAL, _LAVA) else IDX_TO_COLOR[color],
                   DOOR_STATES.get(state) if kind == _DOOR else None)
    for instr in mission.instrs:
        for desc in (instr.obj, instr.target):
            if desc is not None and desc.loc and name.fits(desc._replace(loc=None)) and mission.locates(desc, pos):
                name = name._replace(loc=desc.loc)
    if kind in _MOVABLE and any((pos[0] + dx, pos[1] + dy) in doors for dx, dy in _STEPS):
        name = name._replace(in_the_way=True)
    return name


_TEXT = re.compile(r"^Mission: (?P<mission>.*?)\. Agent sees (?P<sees>.*), holds <(?P<held>[^>]*)>\.$")
_STATE = "|".join(DOOR_STATES.values())
_LOCS = "|".join(re.escape(phrase) for phrase in LOC_PHRASES.values())
_NAME = re.compile(rf"^(?:(?P<state>{_STATE}) )?(?:(?P<color>[a-z]+) )?(?P<type>{'|'.join(_NAMED)})"
                   rf"(?: (?P<loc>{_LOCS}))?(?P<way> {IN_THE_WAY})?$")
_LOC_BY_PHRASE = {phrase: loc for loc, phrase in LOC_PHRASES.items()}


def is_suite_text(text: str) -> bool:
    return text.startswith("Mission: ")


def parse_name(name: str) -> ObjName | None:
    match = _NAME.match(name)
    if not match:
        return None
    return ObjName(match["type"], match["color"], match["state"], _LOC_BY_PHRASE.get(match["loc"]),
                   bool(match["way"]))


def parse_suite_text(text: str) -> tuple[Mission, list[str], str | None]:
    """Inverse of `describe_suite` for planners: (mission, seen names, held name)."""
    match = _TEXT.match(text.strip())
    if not match:
        raise ValueError(f"not a description in format {SUITE_FORMAT_VERSION}: {text!r}")
    seen = [name for name in re.findall(r"<([^>]*)>", match["sees"]) if name != "nothing"]
    held = match["held"] if match["held"] != "nothing" else None
    return mission_of(match["mission"]), seen, held
