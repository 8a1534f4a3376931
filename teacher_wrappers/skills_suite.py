"""Skills for the wider MiniGrid/BabyAI suite: doors that open, boxes, blockers, put next to, done.

They extend the paper tasks' skills (`skills.py`, unchanged there) in three ways:
- a closed door that is not locked is a passage, not a wall: paths go through it and the agent
  opens it when it stands in front of it. Doors the mission is about (`reserved`) stay shut until a
  plan's own `open` step, since opening one early can fail the mission (RedBlueDoors, GoToDoor).
- `open` also opens boxes (a box may hold the key), `put <X> near <Y>` drops next to an object, and
  `done` is the stop action, for missions that end with it (MiniGrid's GoToDoor).
- `drop` walks to a free cell that is not next to a door instead of dropping where it stands.
"""

from __future__ import annotations

import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import OBJECT_TO_IDX, STATE_TO_IDX

from teacher_wrappers.skills import _DIRS, _TEMPLATE, DROP, FORWARD, PICKUP, TOGGLE, Cell, MapView, go_to, pick_up

DONE = int(Actions.done)
_DOOR, _BOX, _EMPTY = OBJECT_TO_IDX["door"], OBJECT_TO_IDX["box"], OBJECT_TO_IDX["empty"]
_OPEN, _CLOSED = STATE_TO_IDX["open"], STATE_TO_IDX["closed"]


class SuiteMapView(MapView):
    """A MapView whose closed, unlocked doors (other than `reserved` ones) are passages."""

    def __init__(self, memory_map: np.ndarray, field_cache: dict | None = None, cells_key=None,
                 state: tuple[Cell, int] | None = None, reserved: frozenset[Cell] = frozenset()):
        """`cells_key` must also identify `reserved` (the teacher adds the mission to it): paths are
        cached by it."""
        super().__init__(memory_map, field_cache, cells_key, state)
        self.reserved = reserved

    def _walkable_both(self) -> tuple[np.ndarray, list[int]]:
        if self._walkable is None:
            key = (self.cells_key, "walkable")
            if key not in self.field_cache:
                kinds, states = self.map[..., 0], self.map[..., 2]
                template = _TEMPLATE[kinds, states]
                template[(kinds == _DOOR) & (states == _CLOSED)] = -1
                for cell in self.reserved:
                    if states[cell] != _OPEN:
                        template[cell] = -2
                template[self.agent] = -1
                self.field_cache[key] = (template, template.ravel().tolist())
            self._walkable = self.field_cache[key]
        return self._walkable

    def _step_along(self, field) -> int | None:
        action = super()._step_along(field)
        if action == FORWARD and self.is_closed_door(self.front):
            return TOGGLE  # a closed door on the way: open it, then walk through
        return action

    def is_closed_door(self, cell: Cell) -> bool:
        return self.kind(cell) == _DOOR and int(self.map[cell][2]) != _OPEN

    def free_cells(self, near: set[Cell] | None = None) -> set[Cell]:
        """Empty floor cells (not the agent's); with `near`, only those next to a cell of `near`."""
        kinds = self.map[..., 0]
        if near is None:
            cells = {(int(x), int(y)) for x, y in np.argwhere(kinds == _EMPTY)}
        else:
            cells = {(x + dx, y + dy) for x, y in near for dx, dy in _DIRS}
            cells = {c for c in cells if 0 <= c[0] < self.width and 0 <= c[1] < self.height and kinds[c] == _EMPTY}
        cells.discard(self.agent)
        return cells


def explore(view: SuiteMapView, targets: set[Cell]) -> int | None:
    return view.explore()


def drop(view: SuiteMapView, targets: set[Cell]) -> int | None:
    """Drop the held object on a free cell that is not next to a door (where it would block the way).

    Walks to the nearest such cell; where none is reachable, drops on a free cell next to the agent.
    """
    if view.agent not in targets:  # not holding it
        return None
    good = {cell for cell in view.free_cells() if not view.next_to_door(cell)}
    if view.front in good:
        return DROP
    action = view.navigate(good)
    if action is not None:
        return action
    if view.kind(view.front) == _EMPTY:
        return DROP
    around = view.free_cells({view.agent})
    return view.navigate(around) if around else DROP


def open_thing(view: SuiteMapView, targets: set[Cell]) -> int | None:
    """Open a closed door or a box (toggling a box opens it and leaves what it held)."""
    closed = {cell for cell in targets if view.kind(cell) == _BOX or view.is_closed_door(cell)}
    if not closed:
        return None
    if view.front in closed:
        return TOGGLE
    return view.navigate(closed)


def put_near(view: SuiteMapView, held: set[Cell], fixed: set[Cell]) -> int | None:
    """Drop the held object on a free cell next to one of `fixed`."""
    if view.agent not in held:
        return None
    spots = view.free_cells(fixed)
    if view.front in spots:
        return DROP
    return view.navigate(spots)


def done(view: SuiteMapView, targets: set[Cell]) -> int | None:
    return DONE


SUITE_SKILLS = {"explore": explore, "go to": go_to, "pick up": pick_up, "drop": drop, "open": open_thing,
                "done": done}
__all__ = ["DONE", "PICKUP", "SUITE_SKILLS", "SuiteMapView", "drop", "explore", "open_thing", "put_near"]
