"""The suite's text style, `tw-suite-v1` ("suite"): every MiniGrid object with its colour, and the mission.

    Mission: pick up the red box. Agent sees <yellow key>, <grey ball in the way>, <locked yellow door>, holds <nothing>.

Objects are keys, balls, boxes, doors (with their state: locked, closed or open), the goal and lava,
each name listed once, in MiniGrid's object order. Two qualifiers are facts a text planner cannot
work out alone: "on your left" (and the other location words) marks the objects a mission's
location words pick out, seen from the start pose; "in the way" marks a key, ball or box on a cell
next to a door, where it stops the agent from walking through, unless the mission names it: the
mission's own object is fetched or left where it is, never moved out of the way.

The style's rules (the `rules` planner) handle every MiniGrid/BabyAI mission type, and its skills
treat closed, unlocked doors as passages (except the doors the mission is about).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
from minigrid.core.constants import (
    IDX_TO_COLOR,
    IDX_TO_OBJECT,
    OBJECT_TO_IDX,
    STATE_TO_IDX,
)

from teacher_wrappers.memory import agent_state
from teacher_wrappers.mission import (
    GO_TO,
    GOAL,
    LOC_PHRASES,
    OPEN,
    PICK_UP,
    PUT_NEXT,
    Instr,
    Mission,
    ObjDesc,
    mission_of,
)
from teacher_wrappers.skills import SUITE_SKILLS, MapView
from teacher_wrappers.styles.base import Description, TextStyle

SUITE_FORMAT_VERSION = "tw-suite-v1"
SUITE_PROMPT_VERSION = f"tw-prompt-suite-1/{SUITE_FORMAT_VERSION}"
SUITE_STYLE = "suite"

SUITE_SYSTEM = (
    "You plan for an agent in a grid world. Each turn you are told its mission, every object it has "
    "seen (keys, balls, boxes, doors that are locked, closed or open, the goal, lava) and what it holds. "
    "A locked door opens only for an agent holding the key of the door's colour; a box may hold a key; "
    "the agent holds one object at a time; an object 'in the way' stands in front of a door. The agent "
    "can do these steps: explore, go to <object>, pick up <object>, drop <object>, open <object>, "
    "put <object> near <object>, done (stop, when the mission is to go somewhere). Name objects exactly "
    "as in the description, with their angle brackets. You are given the admissible plans; answer with "
    "one line that starts with 'Plan:' followed by the steps, separated by commas."
)
SUITE_EXAMPLE = (
    "Mission: pick up the red box. Agent sees <yellow key>, <locked yellow door>, holds <nothing>.",
    "Plan: go to <yellow key>, pick up <yellow key>, go to <locked yellow door>, open <locked yellow door>",
)

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
    named = False  # the mission's own object: fetched or left where it is, never moved out of the way
    for instr in mission.instrs:
        for desc in (instr.obj, instr.target):
            if desc is not None and name.fits(desc._replace(loc=None)):
                named = True
                if desc.loc and mission.locates(desc, pos):
                    name = name._replace(loc=desc.loc)
    if kind in _MOVABLE and not named and any((pos[0] + dx, pos[1] + dy) in doors for dx, dy in _STEPS):
        name = name._replace(in_the_way=True)
    return name


_TEXT = re.compile(r"^Mission: (?P<mission>.*?)\. Agent sees (?P<sees>.*), holds <(?P<held>[^>]*)>\.$")
_STATE = "|".join(DOOR_STATES.values())
_LOCS = "|".join(re.escape(phrase) for phrase in LOC_PHRASES.values())
_NAME = re.compile(rf"^(?:(?P<state>{_STATE}) )?(?:(?P<color>[a-z]+) )?(?P<type>{'|'.join(_NAMED)})"
                   rf"(?: (?P<loc>{_LOCS}))?(?P<way> {IN_THE_WAY})?$")
_LOC_BY_PHRASE = {phrase: loc for loc, phrase in LOC_PHRASES.items()}


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


# -- the rules: every MiniGrid/BabyAI mission type -------------------------------------------------
# The plan is worked out afresh whenever the text changes, so each answer only has to be the right
# next few steps from what is known now:
# - the mission's current instruction (reach the goal, go to, pick up, open, put next to; a sequence
#   moves on once an `open` target is open or a `pick up` target is held);
# - its target in sight: go for it (first dropping what the hands must be free of);
# - else make a way: move objects that stand in front of doors, fetch the key of a locked door (or
#   open a box that may hold it) and open the door, or explore (exploring opens ordinary doors).
# Objects the mission names are never moved or opened out of turn: picking up the wrong one fails
# Fetch and PutNear, opening the blue door first fails RedBlueDoors.

class _State:
    """The parsed text: objects seen (as names and parts), what is held, the mission."""

    def __init__(self, text: str):
        self.mission, names, held = parse_suite_text(text)
        self.seen = [(name, parsed) for name in names if (parsed := parse_name(name)) is not None]
        self.held = held
        self.held_parts = parse_name(held) if held else None
        self.named = [desc for instr in self.mission.instrs for desc in (instr.obj, instr.target) if desc]

    def fitting(self, desc: ObjDesc, **parts) -> list[str]:
        return [name for name, obj in self.seen if obj.fits(desc)
                and all(getattr(obj, key) == value for key, value in parts.items())]

    def is_named(self, obj: ObjName) -> bool:
        return any(obj.fits(desc._replace(loc=None)) for desc in self.named)

    def holds(self, desc: ObjDesc) -> bool:
        return self.held_parts is not None and self.held_parts.fits(desc._replace(loc=None))


def _current(state: _State) -> Instr | None:
    """The first instruction not yet carried out, as far as the text tells."""
    for instr in state.mission.instrs:
        if instr.action == OPEN and state.fitting(instr.obj, state="open") and not _closed(state, instr.obj):
            continue
        if instr.action == PICK_UP and state.holds(instr.obj) and instr is not state.mission.instrs[-1]:
            continue
        return instr
    return None


def _closed(state: _State, desc: ObjDesc) -> list[str]:
    return [name for name in state.fitting(desc, type="door") if not name.startswith("open ")]


def _free_hands(state: _State) -> str:
    return f"drop <{state.held}>, " if state.held else ""


def _fetch(state: _State, name: str) -> str:
    return f"{_free_hands(state)}go to <{name}>, pick up <{name}>"


def _blockers(state: _State, keep: set[str] = frozenset()) -> list[str]:
    """Objects in front of doors that are neither needed nor named by the mission."""
    return [name for name, obj in state.seen if obj.in_the_way and name not in keep and not state.is_named(obj)]


def _unlock(state: _State, door: str, color: str | None) -> str:
    """Open a locked door: its key in hand, or fetched, or looked for in boxes, or explored for."""
    if state.held_parts is not None and state.held_parts.type == "key" and state.held_parts.color == color:
        blockers = _blockers(state)
        # an object in front of a door: put the key down, move the object (the next texts fetch the key again)
        return _move(state, blockers[0]) if blockers else f"go to <{door}>, open <{door}>"
    keys = [name for name, obj in state.seen if obj.type == "key" and obj.color == color]
    if keys:
        blockers = _blockers(state, set(keys))
        if blockers:
            return _move(state, blockers[0])
        return f"{_fetch(state, keys[0])}, go to <{door}>, open <{door}>"
    boxes = [name for name, obj in state.seen if obj.type == "box" and not state.is_named(obj)]
    if boxes:
        return f"go to <{boxes[0]}>, open <{boxes[0]}>"
    return "explore"


def _move(state: _State, blocker: str) -> str:
    """Pick up an object that stands in front of a door; the next text's plan drops it elsewhere."""
    return f"{_free_hands(state)}go to <{blocker}>, pick up <{blocker}>"


def _make_way(state: _State) -> str:
    """The target is not in sight: unlock a door whose key is known, move blockers, or explore."""
    for name, obj in state.seen:
        if obj.type == "door" and obj.state == "locked" and not state.is_named(obj):
            plan = _unlock(state, name, obj.color)
            if plan != "explore":
                return plan
    blockers = _blockers(state)
    if blockers:
        return _move(state, blockers[0])
    if state.held is None and not _picky(state):
        # A key will open some door later, and one lying in a corridor blocks the way: carry it.
        keys = [name for name, obj in state.seen if obj.type == "key" and not state.is_named(obj)]
        if keys:
            return _fetch(state, keys[0])
    return "explore"


def _picky(state: _State) -> bool:
    """Missions that fail when the wrong object is picked up (MiniGrid's Fetch and PutNear)."""
    return any(instr.action in (PICK_UP, PUT_NEXT) for instr in state.mission.instrs)


def _useless_held(state: _State) -> bool:
    """Holding something that no instruction and no locked door needs (a moved blocker, say)."""
    obj = state.held_parts
    if obj is None or state.is_named(obj):
        return False
    if obj.type == "key":
        return False  # harmless to carry; dropped when the hands are needed
    return True


def _instruction_plan(state: _State, instr: Instr) -> str:
    if instr.action == GOAL:
        return "go to <goal>" if any(obj.type == "goal" for _, obj in state.seen) else _make_way(state)
    if instr.action == GO_TO:
        targets = state.fitting(instr.obj)
        return f"go to <{targets[0]}>, done" if targets else _make_way(state)
    if instr.action == PICK_UP:
        if state.holds(instr.obj):
            return "explore"
        targets = state.fitting(instr.obj)
        return _fetch(state, targets[0]) if targets else _make_way(state)
    if instr.action == OPEN:
        doors = _closed(state, instr.obj)
        if not doors:
            return _make_way(state)
        door = doors[0]
        parts = parse_name(door)
        if parts.state == "locked":
            return _unlock(state, door, parts.color)
        return f"go to <{door}>, open <{door}>"
    if instr.action == PUT_NEXT:
        if state.holds(instr.obj):
            fixed = state.fitting(instr.target)
            return f"put <{state.held}> near <{fixed[0]}>" if fixed else "explore"
        movable = state.fitting(instr.obj)
        return _fetch(state, movable[0]) if movable else _make_way(state)
    return "explore"


def reserved_doors(description: Description, mission: Mission) -> frozenset[tuple[int, int]]:
    """Cells of the doors the mission names in a `go to` or `open`: only a plan step may open them."""
    descs = [instr.obj for instr in mission.instrs if instr.action in (GO_TO, OPEN) and instr.obj is not None]
    cells = set()
    for name, positions in description.objects.items():
        parsed = parse_name(name)
        if parsed is not None and parsed.type == "door" and any(parsed.fits(desc) for desc in descs):
            cells.update(positions)
    return frozenset(cells)


class SuiteStyle(TextStyle):
    """`tw-suite-v1`: every object, the mission, and skills for doors, boxes, blockers and `put near`."""

    name = SUITE_STYLE
    format_version = SUITE_FORMAT_VERSION
    prompt_version = SUITE_PROMPT_VERSION
    uses_mission = True
    skills = SUITE_SKILLS
    names = r"[^<>]+"
    system_prompt = SUITE_SYSTEM
    example = SUITE_EXAMPLE

    def describe(self, memory_map: np.ndarray, mission: Mission) -> Description:
        return describe_suite(memory_map, mission)

    def admissible_plans(self, text: str) -> list[str]:
        return suite_admissible_plans(text)

    def rule_plan(self, text: str) -> str:
        return suite_rule_plan(text)

    def user_prompt(self, text: str) -> str:
        """The text and its admissible plans."""
        options = "\n".join(f"- {plan}" for plan in self.admissible_plans(text))
        return f"{text}\nAdmissible plans:\n{options}"

    def map_view(self, memory_map, field_cache, cells_key, state, description, mission) -> MapView:
        return MapView(memory_map, field_cache, cells_key, state, passable_doors=True,
                       reserved=reserved_doors(description, mission))


def suite_rule_plan(text: str) -> str:
    """The rules' plan for a suite text."""
    state = _State(text)
    if _useless_held(state):
        return f"drop <{state.held}>"
    instr = _current(state)
    return "explore" if instr is None else _instruction_plan(state, instr)


def suite_admissible_plans(text: str) -> list[str]:
    """Plans an LLM may choose from for a suite text: explore, the rules' plan and one plan per object
    (fetch it, open it, go to it), sorted, so that the list's order does not give the rules' plan away."""
    state = _State(text)
    plans = [suite_rule_plan(text)]
    if state.held:
        plans.append(f"drop <{state.held}>")
    for name, obj in state.seen:
        if obj.type in ("key", "ball", "box"):
            plans.append(_fetch(state, name))
        if obj.type == "box" or (obj.type == "door" and obj.state != "open"):
            plans.append(f"go to <{name}>, open <{name}>")
        elif obj.type in ("goal", "door"):
            plans.append(f"go to <{name}>")
    return ["explore"] + sorted(set(plans) - {"explore"})
