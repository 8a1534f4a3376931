"""Option controllers: explore, go to <obj>, pick up, drop, open.

Skills see only the memory map (no privileged state). Each returns the MiniGrid action to take now,
or None when the option has nothing left to do (it is finished, or impossible from what is known),
so the teacher moves on to the next option of the plan. Path search treats lava, walls, closed
doors and unseen cells as blocked, so a skill never walks into lava.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import OBJECT_TO_IDX, STATE_TO_IDX

from teacher_wrappers.describe import agent_state

LEFT, RIGHT, FORWARD = int(Actions.left), int(Actions.right), int(Actions.forward)
PICKUP, DROP, TOGGLE = int(Actions.pickup), int(Actions.drop), int(Actions.toggle)

_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # MiniGrid headings: east, south, west, north
_WALKABLE = (OBJECT_TO_IDX["empty"], OBJECT_TO_IDX["floor"], OBJECT_TO_IDX["goal"])
_DOOR, _UNSEEN, _EMPTY = OBJECT_TO_IDX["door"], OBJECT_TO_IDX["unseen"], OBJECT_TO_IDX["empty"]
_OPEN = STATE_TO_IDX["open"]

Cell = tuple[int, int]


def cells_key_of(memory_map: np.ndarray, agent: Cell) -> tuple[bytes, Cell | None]:
    """What descriptions and paths depend on: channels 0-2, plus the agent's cell if it carries something.

    The agent's cell shows what it carries; carrying nothing, it shows empty floor like any other
    cell, so the same key serves the agent wherever it stands (paths are reused as it walks).
    """
    cells = memory_map[..., :3]
    return cells.tobytes(), (agent if cells[agent][0] != _EMPTY else None)


class MapView:
    """The memory map as the skills need it.

    Paths come from distance fields (breadth-first search from the target cells) that depend only on
    the cells seen, not on where the agent stands, so they are cached across steps in `field_cache`
    until the map changes.
    """

    def __init__(self, memory_map: np.ndarray, field_cache: dict | None = None, cells_key=None):
        """`cells_key` identifies what the paths depend on (see `Teacher.cells_key`; computed if not given)."""
        self.map = memory_map
        self.width, self.height = memory_map.shape[:2]
        self.agent, self.heading = agent_state(memory_map)
        self.front = (self.agent[0] + _DIRS[self.heading][0], self.agent[1] + _DIRS[self.heading][1])
        self.cells_key = cells_key if cells_key is not None else cells_key_of(memory_map, self.agent)
        self.field_cache = {} if field_cache is None else field_cache
        self._walkable: list[list[bool]] | None = None

    @property
    def walkable(self) -> list[list[bool]]:
        if self._walkable is None:
            kinds, states = self.map[..., 0], self.map[..., 2]
            walkable = np.isin(kinds, _WALKABLE) | ((kinds == _DOOR) & (states == _OPEN))
            walkable[self.agent] = True
            self._walkable = walkable.tolist()
        return self._walkable

    def kind(self, cell: Cell) -> int:
        x, y = cell
        if cell == self.agent:
            return _EMPTY
        if 0 <= x < self.width and 0 <= y < self.height:
            return int(self.map[x, y, 0])
        return _UNSEEN

    def _distances(self, sources: frozenset[Cell]) -> dict[Cell, int]:
        """Steps from each walkable cell to the nearest source, over walkable cells (cached)."""
        key = (self.cells_key, sources)
        if key not in self.field_cache:
            if len(self.field_cache) > 20_000:
                self.field_cache.clear()
            walkable, width, height = self.walkable, self.width, self.height
            dist = {(x, y): 0 for x, y in sources if 0 <= x < width and 0 <= y < height and walkable[x][y]}
            queue = deque(dist)
            while queue:
                x, y = queue.popleft()
                step = dist[(x, y)] + 1
                for nx, ny in ((x + 1, y), (x, y + 1), (x - 1, y), (x, y - 1)):
                    if 0 <= nx < width and 0 <= ny < height and walkable[nx][ny] and (nx, ny) not in dist:
                        dist[(nx, ny)] = step
                        queue.append((nx, ny))
            self.field_cache[key] = dist
        return self.field_cache[key]

    def turn_towards(self, heading: int) -> int:
        if heading == self.heading:
            return FORWARD
        return RIGHT if heading == (self.heading + 1) % 4 else LEFT

    def navigate(self, targets: set[Cell], step_on: bool = False) -> int | None:
        """Action that brings the agent to face one of `targets` (or stand on it, with step_on).

        None when already there or when no known path leads there.
        """
        if not targets:
            return None
        if step_on:
            if self.agent in targets:
                return None
            sources = frozenset(targets)
        else:
            if self.front in targets:
                return None
            for heading, (dx, dy) in enumerate(_DIRS):
                if (self.agent[0] + dx, self.agent[1] + dy) in targets:
                    return self.turn_towards(heading)
            sources = frozenset((x + dx, y + dy) for x, y in targets for dx, dy in _DIRS)
        dist = self._distances(sources)
        # Step to the neighbour nearest the targets; on a tie keep the current heading (no turn).
        best, best_heading = None, None
        for offset in range(4):
            heading = (self.heading + offset) % 4
            cell = (self.agent[0] + _DIRS[heading][0], self.agent[1] + _DIRS[heading][1])
            if cell in dist and (best is None or dist[cell] < best):
                best, best_heading = dist[cell], heading
        return None if best_heading is None else self.turn_towards(best_heading)

    def next_to_door(self, cell: Cell) -> bool:
        return any(self.kind((cell[0] + dx, cell[1] + dy)) == _DOOR for dx, dy in _DIRS)

    def unseen_frontier(self) -> frozenset[Cell]:
        """Unseen cells next to a cell the agent can walk on: facing one reveals it."""
        key = (self.cells_key, "frontier")
        if key not in self.field_cache:
            unseen = self.map[..., 0] == _UNSEEN
            walkable = np.array(self.walkable)
            near = np.zeros_like(unseen)
            near[1:, :] |= walkable[:-1, :]
            near[:-1, :] |= walkable[1:, :]
            near[:, 1:] |= walkable[:, :-1]
            near[:, :-1] |= walkable[:, 1:]
            self.field_cache[key] = frozenset((int(x), int(y)) for x, y in np.argwhere(unseen & near))
        return self.field_cache[key]


def explore(view: MapView, targets: set[Cell]) -> int | None:
    return view.navigate(view.unseen_frontier())


def go_to(view: MapView, targets: set[Cell]) -> int | None:
    if view.agent in targets:  # held, or a goal the agent stands on
        return None
    step_on = all(view.kind(cell) == OBJECT_TO_IDX["goal"] for cell in targets)
    return view.navigate(targets, step_on=step_on)


def pick_up(view: MapView, targets: set[Cell]) -> int | None:
    if view.agent in targets:  # already held
        return None
    if view.front in targets:
        return PICKUP
    return view.navigate(targets)


def drop(view: MapView, targets: set[Cell]) -> int | None:
    """Drop onto the free cell in front, but never in a doorway, where the key would block the door.

    In front of a doorway, turn towards a better cell. Facing anything else that is not free, drop
    anyway as the reference's skill does: MiniGrid ignores it, and the plan's next sample decides.
    """
    if view.agent not in targets:  # not holding it
        return None
    if view.kind(view.front) != _EMPTY:
        return DROP
    if not view.next_to_door(view.front):
        return DROP
    ax, ay = view.agent
    for offset in (1, 3, 2):
        heading = (view.heading + offset) % 4
        cell = (ax + _DIRS[heading][0], ay + _DIRS[heading][1])
        if view.kind(cell) == _EMPTY and not view.next_to_door(cell):
            return view.turn_towards(heading)
    return DROP


def open_door(view: MapView, targets: set[Cell]) -> int | None:
    closed = {cell for cell in targets if view.map[cell][2] != _OPEN}
    if not closed:
        return None
    if view.front in closed:
        return TOGGLE
    return view.navigate(closed)


SKILL_FUNCTIONS = {"explore": explore, "go to": go_to, "pick up": pick_up, "drop": drop, "open": open_door}
