"""Option controllers: explore, go to <obj>, pick up, drop, open, put <obj> near <obj>, done.

Skills see only the memory map (no privileged state). Each returns the MiniGrid action to take now,
or None when the option has nothing left to do (it is finished, or impossible from what is known),
so the teacher moves on to the next option of the plan. Path search treats lava, walls, locked
doors and unseen cells as blocked, so a skill never walks into lava.

A text style picks its skills by name (`PAPER_SKILLS`, `SUITE_SKILLS`) and how its MapView treats
doors: on the paper's tasks every closed door is a wall; with `passable_doors` (the wider suite) a
closed, unlocked door is a passage that the agent opens when it stands in front of it, except the
`reserved` doors a mission is about (opening one early can fail it: RedBlueDoors, GoToDoor).
"""

from __future__ import annotations

import functools

import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import OBJECT_TO_IDX, STATE_TO_IDX

from teacher_wrappers.memory import agent_state

LEFT, RIGHT, FORWARD = int(Actions.left), int(Actions.right), int(Actions.forward)
PICKUP, DROP, TOGGLE, DONE = int(Actions.pickup), int(Actions.drop), int(Actions.toggle), int(Actions.done)

_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # MiniGrid headings: east, south, west, north
_WALKABLE = (OBJECT_TO_IDX["empty"], OBJECT_TO_IDX["floor"], OBJECT_TO_IDX["goal"])
_DOOR, _UNSEEN, _EMPTY = OBJECT_TO_IDX["door"], OBJECT_TO_IDX["unseen"], OBJECT_TO_IDX["empty"]
_BOX, _GOAL = OBJECT_TO_IDX["box"], OBJECT_TO_IDX["goal"]
_OPEN, _CLOSED = STATE_TO_IDX["open"], STATE_TO_IDX["closed"]
# Field templates as signed bytes: -1 where the agent can walk, -2 where it cannot. Per object, a
# translation table; doors are walkable when open (MapView._walkable_both).
_WALK, _BLOCK = 0xFF, 0xFE  # -1 and -2 as signed bytes
_WALK_BYTES = bytes(_WALK if kind in _WALKABLE else _BLOCK for kind in range(256))
_DOOR_BYTE = bytes([_DOOR])

Cell = tuple[int, int]


def cells_key_of(memory_map: np.ndarray, agent: Cell, key: bytes | None = None) -> tuple[bytes, Cell | None]:
    """What descriptions and paths depend on: the map without the agent's heading, plus the agent's
    cell if it carries something. `key` is the map's `tobytes()` if the caller has it.

    The agent's cell shows what it carries; carrying nothing, it shows empty floor like any other
    cell, so the same key serves the agent wherever it stands (paths are reused as it walks).
    """
    raw = bytearray(memory_map.tobytes() if key is None else key)
    _, height, channels = memory_map.shape
    cell = (agent[0] * height + agent[1]) * channels
    raw[cell + 3] = 0  # channel 3 is 0 everywhere but at the agent's cell
    return bytes(raw), (agent if raw[cell] != _EMPTY else None)


class _Field:
    """Breadth-first distances from source cells over walkable cells, grown only as far as asked.

    Cells are flat indices x * height + y; `dist` is a flat list: the distance, or -1 (walkable, not
    reached yet) or -2 (blocked). After growing to level L, every cell within L steps of a source has
    its exact distance, so a query can stop as soon as one asked-for cell has one: the others are at
    least as far (the agent's neighbours near an unseen cell, the common case when exploring, are
    answered after a level or two instead of a search of the whole map).
    """

    __slots__ = ("dist", "level", "frontier", "neighbours")

    def __init__(self, sources: list[int], template: list[int], width: int, height: int):
        self.dist = dist = template.copy()  # -1 walkable, -2 blocked
        self.frontier = frontier = []
        for cell in sources:
            if dist[cell] == -1:
                dist[cell] = 0
                frontier.append(cell)
        self.level = 0
        self.neighbours = _neighbours(width, height)

    def distances(self, cells: tuple[int, ...]) -> list[int]:
        """The distance list, grown until the nearest of `cells` (flat indices, -1 outside) is known."""
        dist, neighbours = self.dist, self.neighbours
        while self.frontier:
            for cell in cells:
                if cell >= 0 and dist[cell] >= 0:
                    return dist
            step, grown = self.level + 1, []
            for cell in self.frontier:
                for near in neighbours[cell]:
                    if dist[near] == -1:
                        dist[near] = step
                        grown.append(near)
            self.level, self.frontier = step, grown
        return dist


@functools.lru_cache(maxsize=None)
def _neighbours(width: int, height: int) -> tuple[tuple[int, ...], ...]:
    """Flat indices of the in-grid neighbours of every cell of a width x height grid."""
    return tuple(tuple(nx * height + ny for nx, ny in ((x + 1, y), (x, y + 1), (x - 1, y), (x, y - 1))
                       if 0 <= nx < width and 0 <= ny < height)
                 for x in range(width) for y in range(height))


@functools.lru_cache(maxsize=65536)
def _around(agent: Cell, heading: int, width: int, height: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The agent's four headings in order of preference on a tie (keep the current one: no turn) and the
    flat index of the neighbour each faces (-1 outside the grid)."""
    headings = tuple([(heading + offset) % 4 for offset in range(4)])
    cells = [(agent[0] + _DIRS[h][0], agent[1] + _DIRS[h][1]) for h in headings]
    return headings, tuple([x * height + y if 0 <= x < width and 0 <= y < height else -1 for x, y in cells])


class MapView:
    """The memory map as the skills need it.

    Paths come from distance fields (breadth-first search from the target cells) that depend only on
    the cells seen, not on where the agent stands, so they are cached across steps in `field_cache`
    until the map changes.
    """

    def __init__(self, memory_map: np.ndarray, field_cache: dict | None = None, cells_key=None,
                 state: tuple[Cell, int] | None = None, passable_doors: bool = False,
                 reserved: frozenset[Cell] = frozenset()):
        """`cells_key` identifies what the paths depend on (see `cells_key_of`; with `passable_doors` it must
        identify `reserved` too: paths are cached by it) and `state` is the agent's (position, heading);
        both are read off the map if not given."""
        self.passable_doors, self.reserved = passable_doors, reserved
        self.map = memory_map
        self.width, self.height = memory_map.shape[:2]
        self.agent, self.heading = agent_state(memory_map) if state is None else state
        self.front_offset = _DIRS[self.heading]
        self.front = (self.agent[0] + self.front_offset[0], self.agent[1] + self.front_offset[1])
        self.cells_key = cells_key if cells_key is not None else cells_key_of(memory_map, self.agent)
        self.field_cache = {} if field_cache is None else field_cache
        self._walkable: tuple[list[int], bytes, bytes] | None = None

    @property
    def walkable(self) -> np.ndarray:
        """Cells the agent can walk on, (width, height) bool."""
        return np.frombuffer(self._walkable_both()[1], dtype=np.int8).reshape(self.width, self.height) == -1

    @property
    def field_template(self) -> list[int]:
        """Flat list indexed x * height + y: -1 where walkable, -2 where blocked (fields start from it)."""
        return self._walkable_both()[0]

    def _walkable_both(self) -> tuple[list[int], bytes, bytes]:
        """The field template as a flat list and as signed bytes, and the cells' objects (one byte per cell,
        flat), cached per cells."""
        if self._walkable is None:
            key = (self.cells_key, "walkable")
            walkable = self.field_cache.get(key)
            if walkable is None:
                # Byte by byte (-1 and -2 as signed bytes): a translation of the cells' objects, then the doors.
                height, channels = self.height, self.map.shape[2]
                raw = self.map.tobytes()
                kinds = raw[::channels]
                template = bytearray(kinds.translate(_WALK_BYTES))
                door = kinds.find(_DOOR_BYTE)
                while door >= 0:
                    state = raw[door * channels + 2]
                    if state == _OPEN or (self.passable_doors and state == _CLOSED):
                        template[door] = _WALK
                    door = kinds.find(_DOOR_BYTE, door + 1)
                if self.passable_doors:
                    for x, y in self.reserved:
                        if raw[(x * height + y) * channels + 2] != _OPEN:
                            template[x * height + y] = _BLOCK
                template[self.agent[0] * height + self.agent[1]] = _WALK
                walkable = self.field_cache[key] = (memoryview(template).cast("b").tolist(), bytes(template), kinds)
            self._walkable = walkable
        return self._walkable

    def kind(self, cell: Cell) -> int:
        x, y = cell
        if cell == self.agent:
            return _EMPTY
        if 0 <= x < self.width and 0 <= y < self.height:
            return int(self.map[x, y, 0])
        return _UNSEEN

    def _field(self, targets: frozenset[Cell], step_on: bool) -> _Field:
        """The (lazily grown) distance field towards `targets`, shared across steps while the map holds."""
        key = (self.cells_key, targets, step_on)
        field = self.field_cache.get(key)
        if field is None:
            if len(self.field_cache) > 20_000:
                self.field_cache.clear()
            width, height = self.width, self.height
            sources = targets if step_on else {(x + dx, y + dy) for x, y in targets for dx, dy in _DIRS}
            field = self.field_cache[key] = _Field(
                [x * height + y for x, y in sources if 0 <= x < width and 0 <= y < height],
                self.field_template, width, height)
        return field

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
        else:
            if self.front in targets:
                return None
            for heading, (dx, dy) in enumerate(_DIRS):
                if (self.agent[0] + dx, self.agent[1] + dy) in targets:
                    return self.turn_towards(heading)
        return self._step_along(self._field(frozenset(targets), step_on))

    def explore(self) -> int | None:
        """`navigate(self.unseen_frontier())`, without building the frontier: the cells next to an
        unseen cell of the frontier are the walkable cells next to any unseen cell (`_near_unseen`)."""
        width, height = self.width, self.height
        key = (self.cells_key, "explore")
        field = self.field_cache.get(key)
        if field is None:
            template, template_bytes, kinds = self._walkable_both()
            field = self.field_cache[key] = _Field(_near_unseen(kinds, template_bytes, width, height), template,
                                                   width, height)
        if field.dist[self.agent[0] * height + self.agent[1]] == 0:  # an unseen cell is next to the agent
            for heading, (dx, dy) in enumerate((self.front_offset,) + _DIRS):
                x, y = self.agent[0] + dx, self.agent[1] + dy
                if 0 <= x < width and 0 <= y < height and self.map[x, y, 0] == _UNSEEN:
                    return None if heading == 0 else self.turn_towards(heading - 1)  # facing it already: done
        return self._step_along(field)

    def _step_along(self, field: _Field) -> int | None:
        """Step to the neighbour nearest the field's sources (None if none is on a path to them)."""
        headings, flat = _around(self.agent, self.heading, self.width, self.height)
        dist = field.distances(flat)
        best, best_heading = None, None
        for heading, cell in zip(headings, flat):
            if cell >= 0 and dist[cell] >= 0 and (best is None or dist[cell] < best):
                best, best_heading = dist[cell], heading
        if best_heading is None:
            return None
        action = self.turn_towards(best_heading)
        if action == FORWARD and self.passable_doors and self.is_closed_door(self.front):
            return TOGGLE  # a closed door on the way: open it, then walk through
        return action

    def next_to_door(self, cell: Cell) -> bool:
        return any(self.kind((cell[0] + dx, cell[1] + dy)) == _DOOR for dx, dy in _DIRS)

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

    def unseen_frontier(self) -> frozenset[Cell]:
        """Unseen cells next to a cell the agent can walk on: facing one reveals it."""
        key = (self.cells_key, "frontier")
        if key not in self.field_cache:
            unseen = self.map[..., 0] == _UNSEEN
            walkable = self.walkable
            near = np.zeros_like(unseen)
            near[1:, :] |= walkable[:-1, :]
            near[:-1, :] |= walkable[1:, :]
            near[:, 1:] |= walkable[:, :-1]
            near[:, :-1] |= walkable[:, 1:]
            self.field_cache[key] = frozenset((int(x), int(y)) for x, y in np.argwhere(unseen & near))
        return self.field_cache[key]


_UNSEEN_BIT = bytes(kind == _UNSEEN for kind in range(256))  # translation tables to one 0/1 byte per cell
_WALK_BIT = bytes(value == _WALK for value in range(256))


@functools.cache
def _row_masks(width: int, height: int) -> tuple[int, int]:
    """One byte per cell (flat index x * height + y), as Python ints: 1 where y > 0, 1 where y < height - 1."""
    cells = range(width * height)
    return (int.from_bytes(bytes(cell % height != 0 for cell in cells), "little"),
            int.from_bytes(bytes(cell % height != height - 1 for cell in cells), "little"))


def _near_unseen(kinds: bytes, template: bytes, width: int, height: int) -> list[int]:
    """Flat indices, ascending, of the walkable cells (`template` bytes -1) next to an unseen cell (`kinds` 0;
    beyond the grid is not unseen). Each cell is a 0/1 byte of a Python int, so that the four neighbours are
    four shifts of the whole map."""
    unseen = int.from_bytes(kinds.translate(_UNSEEN_BIT), "little")
    above, below = _row_masks(width, height)
    row = 8 * height
    near = (unseen << 8) & above | (unseen >> 8) & below | unseen << row | unseen >> row
    cells = (near & int.from_bytes(template.translate(_WALK_BIT), "little")).to_bytes(width * height, "little")
    sources, cell = [], cells.find(1)
    while cell >= 0:
        sources.append(cell)
        cell = cells.find(1, cell + 1)
    return sources


def explore(view: MapView, targets: set[Cell]) -> int | None:
    return view.explore()


def go_to(view: MapView, targets: set[Cell]) -> int | None:
    if view.agent in targets:  # held, or a goal the agent stands on
        return None
    step_on = all(view.kind(cell) == _GOAL for cell in targets)
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


def drop_aside(view: MapView, targets: set[Cell]) -> int | None:
    """Drop the held object on a free cell that is not next to a door (where it would block the way), and
    never where it would shut the agent in (a corner whose other side is blocked).

    Walks to the nearest such cell; where none is reachable, to the nearest free cell (a corridor of
    doors: better next to a door than never dropped), and only then drops where it stands.
    """
    if view.agent not in targets:  # not holding it
        return None
    free = view.free_cells()
    good = {cell for cell in free if not view.next_to_door(cell)}
    for cells in (good, free):
        if view.front in cells:
            if _leaves_a_way(view, view.front):
                return DROP
            cells = cells - {view.front}
        action = view.navigate(cells)
        if action is not None:
            return action
    return DROP


def _leaves_a_way(view: MapView, cell: Cell) -> bool:
    """Whether the agent can still step somewhere once an object stands on `cell` (a corridor is split, but
    the agent is not shut in: the plan's next steps may need it elsewhere)."""
    walkable = view.walkable
    for dx, dy in _DIRS:
        other = (view.agent[0] + dx, view.agent[1] + dy)
        if other != cell and 0 <= other[0] < view.width and 0 <= other[1] < view.height and walkable[other]:
            return True
    return False


def open_door(view: MapView, targets: set[Cell]) -> int | None:
    closed = {cell for cell in targets if view.map[cell][2] != _OPEN}
    if not closed:
        return None
    if view.front in closed:
        return TOGGLE
    return view.navigate(closed)


def open_door_or_box(view: MapView, targets: set[Cell]) -> int | None:
    """Open a closed door or a box (toggling a box opens it and leaves what it held)."""
    closed = {cell for cell in targets if view.kind(cell) == _BOX or view.is_closed_door(cell)}
    if not closed:
        return None
    if view.front in closed:
        return TOGGLE
    return view.navigate(closed)


def put_near(view: MapView, held: set[Cell], fixed: set[Cell]) -> int | None:
    """Drop the held object on a free cell next to one of `fixed`."""
    if view.agent not in held:
        return None
    spots = view.free_cells(fixed)
    if view.front in spots:
        return DROP
    return view.navigate(spots)


def done(view: MapView, targets: set[Cell]) -> int | None:
    return DONE


# Skills by the step names of plans; a skill with two objects ("put near") takes a set of cells for each.
PAPER_SKILLS = {"explore": explore, "go to": go_to, "pick up": pick_up, "drop": drop, "open": open_door}
SUITE_SKILLS = {**PAPER_SKILLS, "drop": drop_aside, "open": open_door_or_box, "put near": put_near, "done": done}
