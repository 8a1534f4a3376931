"""Hand-written rules for the suite's texts (`describe_suite`): every MiniGrid/BabyAI mission type.

The plan is worked out afresh whenever the text changes, so each answer only has to be the right
next few steps from what is known now:
- the mission's current instruction (reach the goal, go to, pick up, open, put next to; a sequence
  moves on once an `open` target is open or a `pick up` target is held);
- its target in sight: go for it (first dropping what the hands must be free of);
- else make a way: move objects that stand in front of doors, fetch the key of a locked door (or
  open a box that may hold it) and open the door, or explore (exploring opens ordinary doors).
Objects the mission names are never moved or opened out of turn: picking up the wrong one fails
Fetch and PutNear, opening the blue door first fails RedBlueDoors.
"""

from __future__ import annotations

from teacher_wrappers.describe_suite import ObjName, parse_name, parse_suite_text
from teacher_wrappers.mission import GO_TO, GOAL, OPEN, PICK_UP, PUT_NEXT, Instr, ObjDesc


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
        return f"go to <{door}>, open <{door}>"
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
