"""Missions of MiniGrid and BabyAI environments, parsed into goals the teacher and student can use.

A mission string ("pick up the purple box", "go fetch a red ball", "open the door on your left",
"put the red ball near the blue key", "open the red door then the blue door", "get to the green goal
square") becomes a `Mission`: a sequence of `Instr` (an action and object descriptions). Location
words ("on your left") are relative to the agent's pose when the episode starts, as in BabyAI's
verifier, so a mission also keeps that pose (`anchor`).

`encode` turns a mission into a fixed-size uint8 vector (the student's obs["mission"]); `decode`
inverts it, so a teacher fed only observations sees the same mission as one reading the env.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import numpy as np
from minigrid.core.constants import COLOR_NAMES, COLOR_TO_IDX, DIR_TO_VEC, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX
from minigrid.envs.babyai.core.verifier import LOC_NAMES

# Actions of an instruction; 0 in the vector means "no instruction".
GOAL, GO_TO, PICK_UP, OPEN, PUT_NEXT = "reach goal", "go to", "pick up", "open", "put next"
ACTIONS = (GOAL, GO_TO, PICK_UP, OPEN, PUT_NEXT)
OBJECT_TYPES = ("key", "ball", "box", "door")
LOC_PHRASES = {"left": "on your left", "right": "on your right", "front": "in front of you",
               "behind": "behind you"}
MAX_INSTRS = 2
INSTR_FIELDS = 6  # action, type, colour, location, second type, second colour
VECTOR_SIZE = MAX_INSTRS * INSTR_FIELDS + 3  # + the anchor pose (x, y, heading + 1)


class ObjDesc(NamedTuple):
    """An object as a mission names it; None matches any type, colour or place."""

    type: str | None = None
    color: str | None = None
    loc: str | None = None

    def __str__(self) -> str:
        words = [self.color] if self.color else []
        words.append(self.type or "object")
        if self.loc:
            words.append(LOC_PHRASES[self.loc])
        return " ".join(words)


class Instr(NamedTuple):
    action: str
    obj: ObjDesc | None = None
    target: ObjDesc | None = None  # the object to put `obj` next to

    def __str__(self) -> str:
        if self.action == GOAL:
            return "go to the goal"
        if self.action == PUT_NEXT:
            return f"put the {self.obj} next to the {self.target}"
        return f"{self.action} the {self.obj}"


class Mission(NamedTuple):
    instrs: tuple[Instr, ...]
    anchor: tuple[int, int, int] | None = None  # agent (x, y, heading) at reset, for location words

    @property
    def text(self) -> str:
        """Canonical wording: the same for every phrasing of the same goal."""
        return ", then ".join(str(instr) for instr in self.instrs) or "explore"

    def with_anchor(self, x: int, y: int, heading: int) -> Mission:
        """The mission seen from a start pose; missions without location words ignore it (and stay equal)."""
        if not any(instr.obj is not None and instr.obj.loc for instr in self.instrs):
            return self
        return self._replace(anchor=(int(x), int(y), int(heading)))

    def locates(self, desc: ObjDesc, pos: tuple[int, int]) -> bool:
        """Whether `pos` lies where `desc`'s location word says, seen from the anchor (BabyAI's rule)."""
        if desc.loc is None or self.anchor is None:
            return True
        ax, ay, heading = self.anchor
        vx, vy = pos[0] - ax, pos[1] - ay
        fx, fy = DIR_TO_VEC[heading]
        ahead, right = vx * fx + vy * fy, vx * -fy + vy * fx
        return {"left": right < 0, "right": right > 0, "front": ahead > 0, "behind": ahead < 0}[desc.loc]


_COLOR = "|".join(COLOR_NAMES)
_LOC = "|".join(re.escape(phrase) for phrase in LOC_PHRASES.values())
_DESC = (rf"(?:the |a |an )?(?:(?P<{{p}}color>{_COLOR}) )?(?P<{{p}}type>key|ball|box|door|object)"
         rf"(?: (?P<{{p}}loc>{_LOC}))?")
_VERBS = (r"go to|pick up|open|get|go get|fetch|go fetch|you must fetch")
_INSTR = re.compile(rf"^(?:(?P<verb>{_VERBS}) )?{_DESC.format(p='a')}$")
_PUT = re.compile(rf"^put {_DESC.format(p='a')} (?:near|next to) {_DESC.format(p='b')}$")
_PICKUP_VERBS = ("pick up", "get", "go get", "fetch", "go fetch", "you must fetch")
_LOC_BY_PHRASE = {phrase: loc for loc, phrase in LOC_PHRASES.items()}


class MissionError(ValueError):
    """A mission string this parser does not understand."""


def _desc(match: re.Match, prefix: str) -> ObjDesc:
    kind = match[f"{prefix}type"]
    loc = match[f"{prefix}loc"]
    return ObjDesc(None if kind == "object" else kind, match[f"{prefix}color"], _LOC_BY_PHRASE.get(loc))


def _clauses(text: str) -> list[str]:
    """Split sequenced instructions; "A after you B" means B first."""
    if " after you " in text:
        first, _, second = text.partition(" after you ")
        return _clauses(second) + _clauses(first)
    return [part for part in re.split(r",? (?:and )?then |, and | and ", text) if part]


def parse_mission(text: str) -> Mission:
    """Parse a MiniGrid or BabyAI mission string; raises MissionError if it is not understood."""
    text = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")
    if "goal" in text or "square" in text:  # "get to the green goal square", "reach the goal", DoorKey's
        return Mission((Instr(GOAL),))
    instrs: list[Instr] = []
    verb = None
    for clause in _clauses(text):
        put = _PUT.match(clause)
        if put:
            instrs.append(Instr(PUT_NEXT, _desc(put, "a"), _desc(put, "b")))
            continue
        match = _INSTR.match(clause)
        if not match or not (match["verb"] or verb):
            raise MissionError(f"cannot parse mission {text!r} (at {clause!r})")
        verb = match["verb"] or verb  # "open the red door then the blue door" reuses the verb
        action = PICK_UP if verb in _PICKUP_VERBS else verb
        instrs.append(Instr(action, _desc(match, "a")))
    return Mission(tuple(instrs))


def mission_of(text: str) -> Mission:
    """`parse_mission`, or an empty mission (explore) when the string is not understood."""
    try:
        return parse_mission(text)
    except MissionError:
        return Mission(())


def start_mission(env) -> Mission:
    """The mission of a MiniGrid env just reset, seen from the agent's start pose."""
    base = env.unwrapped
    return mission_of(str(getattr(base, "mission", ""))).with_anchor(*base.agent_pos, base.agent_dir)


def _type_index(kind: str | None) -> int:
    return 0 if kind is None else OBJECT_TO_IDX[kind]


def _color_index(color: str | None) -> int:
    return 0 if color is None else COLOR_TO_IDX[color] + 1


def encode(mission: Mission) -> np.ndarray:
    """Fixed-size uint8 vector: per instruction (action, type, colour, location, type 2, colour 2), anchor."""
    vector = np.zeros(VECTOR_SIZE, dtype=np.uint8)
    for i, instr in enumerate(mission.instrs[:MAX_INSTRS]):
        obj, target = instr.obj or ObjDesc(), instr.target or ObjDesc()
        loc = 0 if obj.loc is None else LOC_NAMES.index(obj.loc) + 1
        vector[i * INSTR_FIELDS:(i + 1) * INSTR_FIELDS] = (
            ACTIONS.index(instr.action) + 1, _type_index(obj.type), _color_index(obj.color), loc,
            _type_index(target.type), _color_index(target.color))
    if mission.anchor is not None:
        x, y, heading = mission.anchor
        vector[-3:] = (x, y, heading + 1)
    return vector


def decode(vector: np.ndarray) -> Mission:
    """Inverse of `encode` (memoised: vectors recur every step)."""
    return _decode(np.asarray(vector, dtype=np.uint8).tobytes())


@functools.lru_cache(maxsize=1024)
def _decode(data: bytes) -> Mission:
    vector = np.frombuffer(data, dtype=np.uint8)
    instrs = []
    for i in range(MAX_INSTRS):
        action, kind, color, loc, kind2, color2 = (int(v) for v in vector[i * INSTR_FIELDS:(i + 1) * INSTR_FIELDS])
        if action == 0:
            break
        obj = ObjDesc(IDX_TO_OBJECT[kind] if kind else None, IDX_TO_COLOR[color - 1] if color else None,
                      LOC_NAMES[loc - 1] if loc else None)
        target = ObjDesc(IDX_TO_OBJECT[kind2] if kind2 else None, IDX_TO_COLOR[color2 - 1] if color2 else None)
        action_name = ACTIONS[action - 1]
        instrs.append(Instr(action_name, None if action_name == GOAL else obj,
                            target if action_name == PUT_NEXT else None))
    x, y, heading = (int(v) for v in vector[-3:])
    return Mission(tuple(instrs), (x, y, heading - 1) if heading else None)
