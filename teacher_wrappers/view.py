"""MiniGrid's egocentric observation, computed with index arithmetic instead of Grid objects.

`MiniGridEnv.gen_obs` slices the grid into a new `Grid`, rotates it `agent_dir + 1` times (a new
`Grid` each time), works out the visibility mask cell by cell and encodes the result: about four
fifths of a MiniGrid step. `gen_obs(env)` returns exactly the same observation (image, direction,
mission) from the view cells' world coordinates: the cell at view position (i, j) is
`agent + top_left + i * right - j * forward` (see `view_offsets`), a cell outside the grid is a grey
wall (MiniGrid slices in a fresh `Wall`), and the visibility mask is `Grid.process_vis`'s, memoised by
which view cells are opaque. `tests/test_view.py` checks it against MiniGrid's own on every task.

It also leaves on the env what the memory map needs (`env.last_view`: the world cells the view showed
and their codes), so that `MemoryMap.update` need not work them out again.

The paper tasks (`teacher_wrappers.envs.DoorTaskEnv`) use it always. For any other MiniGrid or BabyAI
env, `use_fast_obs(env)` installs it on that env (a no-op where the env's class has its own
`gen_obs` or `gen_obs_grid`): for example in `student_env`, right after `gym.make`.
"""

from __future__ import annotations

import functools
import operator
import types
from typing import NamedTuple

import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.world_object import Wall
from minigrid.minigrid_env import MiniGridEnv

_DIR_VEC = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])
EMPTY_CODE = (OBJECT_TO_IDX["empty"], 0, 0)
UNSEEN_CODE = (0, 0, 0)


@functools.cache
def view_offsets(agent_dir: int, view_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from the agent to every cell of MiniGrid's egocentric view image, as (view, view) arrays.

    MiniGrid's view image has the agent at (view//2, view-1) looking towards row 0; the inverse of
    `MiniGridEnv.get_view_coords` maps a view cell (vx, vy) to top_left + vx * right - vy * forward.
    """
    forward = _DIR_VEC[agent_dir]
    right = np.array((-forward[1], forward[0]))
    top_left = forward * (view_size - 1) - right * (view_size // 2)
    vx, vy = np.meshgrid(np.arange(view_size), np.arange(view_size), indexing="ij")
    offsets = top_left[None, None, :] + vx[..., None] * right - vy[..., None] * forward
    return offsets[..., 0], offsets[..., 1]


@functools.cache
def _flat_offsets(agent_dir: int, view_size: int) -> tuple[tuple[int, int], ...]:
    """`view_offsets` as Python ints, in the image's memory order (view x major, view y minor)."""
    dx, dy = view_offsets(agent_dir, view_size)
    return tuple(zip(dx.ravel().tolist(), dy.ravel().tolist()))


@functools.lru_cache(maxsize=1 << 16)
def _visible(size: int, opaque: int) -> tuple[bool, ...]:
    """`Grid.process_vis` of a (size, size) view whose opaque cells are the set bits of `opaque` (bit
    i * size + j for view cell (i, j)), the agent at (size // 2, size - 1); flat, in the image's order."""
    mask = [False] * (size * size)
    mask[(size // 2) * size + size - 1] = True

    def clear(i: int, j: int) -> bool:
        return mask[i * size + j] and not opaque >> (i * size + j) & 1

    for j in reversed(range(size)):
        for i in range(size - 1):
            if clear(i, j):
                mask[(i + 1) * size + j] = True
                if j > 0:
                    mask[(i + 1) * size + j - 1] = mask[i * size + j - 1] = True
        for i in reversed(range(1, size)):
            if clear(i, j):
                mask[(i - 1) * size + j] = True
                if j > 0:
                    mask[(i - 1) * size + j - 1] = mask[i * size + j - 1] = True
    return tuple(mask)


class _ViewCells(NamedTuple):
    getter: operator.itemgetter | None  # fetches the view cells' objects from `Grid.grid`, if all lie inside it
    indices: tuple[int, ...]  # per view cell, in the image's memory order: index in `Grid.grid`, -1 beyond the grid
    offsets: tuple[int, ...]  # the same cells' byte offsets in a (width, height, 4) uint8 map, -1 beyond the grid


@functools.lru_cache(maxsize=1 << 14)
def _view_cells(ax: int, ay: int, agent_dir: int, size: int, width: int, height: int) -> _ViewCells:
    indices, offsets = [], []
    for dx, dy in _flat_offsets(agent_dir, size):
        x, y = ax + dx, ay + dy
        inside = 0 <= x < width and 0 <= y < height
        indices.append(y * width + x if inside else -1)
        offsets.append((x * height + y) * 4 if inside else -1)
    getter = operator.itemgetter(*indices) if min(indices) >= 0 else None
    return _ViewCells(getter, tuple(indices), tuple(offsets))


class LastView(NamedTuple):
    """What `gen_obs` saw, for the memory map: its image (to tell it is this view), the grid's (width,
    height), and the (byte offset in a (width, height, 4) uint8 map, code) of every visible cell inside the
    grid, the agent's own cell coded by what lies there (not what it carries)."""

    image: np.ndarray
    shape: tuple[int, int]
    seen: list[tuple[int, tuple[int, int, int]]]


_OUTSIDE = Wall()  # what MiniGrid's `Grid.slice` puts beyond the grid (a fresh one each time; stateless)
# Images by their cells' codes: building a small array from Python tuples costs more than a lookup and a copy.
_IMAGES: dict[tuple, np.ndarray] = {}
_IMAGES_LIMIT = 20_000


def gen_obs(self: MiniGridEnv) -> dict:
    """Exactly `MiniGridEnv.gen_obs(self)`, without building Grid objects; leaves `self.last_view`."""
    size = self.agent_view_size
    grid = self.grid
    width, height = grid.width, grid.height
    ax, ay = self.agent_pos
    cells = _view_cells(int(ax), int(ay), self.agent_dir, size, width, height)
    objects = grid.grid
    objs = cells.getter(objects) if cells.getter is not None else \
        [objects[i] if i >= 0 else _OUTSIDE for i in cells.indices]
    if self.see_through_walls:
        visible = _all_visible(size)
    else:
        opaque = 0
        for bit, obj in zip(_bits(size), objs):
            if obj is not None and not obj.see_behind():
                opaque |= bit
        visible = _visible(size, opaque)
    codes = [(EMPTY_CODE if obj is None else obj.encode()) if seen else UNSEEN_CODE for obj, seen in zip(objs, visible)]
    seen_cells = [(offset, code) for offset, code, seen in zip(cells.offsets, codes, visible) if seen and offset >= 0]
    # The agent sees what it carries at its own cell (always visible).
    codes[(size // 2) * size + size - 1] = EMPTY_CODE if self.carrying is None else self.carrying.encode()
    key = tuple(codes)
    image = _IMAGES.get(key)
    if image is None:
        if len(_IMAGES) >= _IMAGES_LIMIT:
            _IMAGES.clear()
        image = _IMAGES[key] = np.array(codes, dtype=np.uint8).reshape(size, size, 3)
        image.flags.writeable = False
    image = image.copy()
    self.last_view = LastView(image, (width, height), seen_cells)
    return {"image": image, "direction": self.agent_dir, "mission": self.mission}


@functools.cache
def _bits(size: int) -> tuple[int, ...]:
    return tuple(1 << k for k in range(size * size))


@functools.cache
def _all_visible(size: int) -> tuple[bool, ...]:
    return (True,) * (size * size)


def fast_obs_applies(env: MiniGridEnv) -> bool:
    """Whether `gen_obs` reproduces `env`'s observation: its class keeps MiniGrid's own observation code."""
    cls = type(env)
    return (isinstance(env, MiniGridEnv) and cls.gen_obs is MiniGridEnv.gen_obs
            and cls.gen_obs_grid is MiniGridEnv.gen_obs_grid and type(env.grid) is Grid)


def use_fast_obs(env) -> bool:
    """Install `gen_obs` on the MiniGrid env under `env` (any wrappers); returns whether it did.

    An instance attribute: the class is untouched, and a copy or unpickled env that loses it computes the
    same observations the slow way. Envs whose class defines its own observation are left alone.
    """
    base = getattr(env, "unwrapped", env)
    if not fast_obs_applies(base):
        return False
    base.gen_obs = types.MethodType(gen_obs, base)
    return True
