"""Fog-of-war memory map: everything the agent has ever seen, in absolute grid coordinates.

With a 3x3 view the tasks are partially observable; this map is what makes them learnable by a
small CNN, and it is all the teacher's skills are allowed to see.

Layout of the map, shape (width, height, 4), uint8, indexed [x, y] like MiniGrid's grid encoding:
  channel 0-2: MiniGrid's (object, colour, state) of every cell ever seen; 0 where never seen.
               The agent's own cell shows the object it carries (or empty), as MiniGrid's view does.
  channel 3:   agent heading + 1 at the agent's cell, 0 elsewhere.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX
from minigrid.minigrid_env import MiniGridEnv

from teacher_wrappers import mission
from teacher_wrappers.view import EMPTY_CODE, fast_obs_applies, gen_obs, view_offsets

EMPTY = np.array([OBJECT_TO_IDX["empty"], 0, 0], dtype=np.uint8)
_MARKED = bytes([0] + [1] * 255)  # translation table: byte -> 1 if not 0


def agent_state(memory_map: np.ndarray, raw: bytes | None = None) -> tuple[tuple[int, int], int]:
    """(agent position, heading) read off channel 3 of a memory map (`raw`: its `tobytes()`, if known)."""
    _, height, channels = memory_map.shape
    headings = (memory_map.tobytes() if raw is None else raw)[3::channels]  # channel 3, one byte per cell
    marked = headings.translate(_MARKED)
    count = marked.count(1)
    if count != 1:
        raise ValueError(f"a memory map must mark exactly one agent cell, found {count}")
    cell = marked.find(1)
    return divmod(cell, height), headings[cell] - 1


def partial_view(env: MiniGridEnv) -> np.ndarray:
    """MiniGrid's own encoded egocentric view (unseen cells are 0), for envs whose obs we cannot reuse.

    Worked out by `teacher_wrappers.view.gen_obs` where that is exact (it also tells the memory map which
    cells it saw), else by MiniGrid's Grid objects."""
    if type(env).gen_obs is gen_obs or fast_obs_applies(env):
        return gen_obs(env)["image"]
    grid, vis_mask = env.gen_obs_grid()
    return grid.encode(vis_mask)


class MemoryMap:
    """Accumulates MiniGrid's egocentric views into an absolute map of everything seen so far.

    The map lives in a bytearray laid out as the observation (channel 3 zero): merging a view from
    `teacher_wrappers.view.gen_obs` writes the bytes of the cells it saw, and the observation is one copy.
    """

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self._buffer = bytearray(width * height * 4)
        self._grid = np.frombuffer(self._buffer, dtype=np.uint8).reshape(width, height, 4)
        self.agent_pos = (0, 0)
        self.agent_dir = 0
        self._carrying = EMPTY_CODE  # the code of the carried object (or of empty)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_grid"]  # a view of the buffer: rebuilt on the copy's own buffer
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._grid = np.frombuffer(self._buffer, dtype=np.uint8).reshape(self.width, self.height, 4)

    @property
    def carrying(self) -> np.ndarray:
        """The code of what the agent carries (empty if nothing), shown at its cell."""
        return np.array(self._carrying, dtype=np.uint8)

    @carrying.setter
    def carrying(self, code) -> None:
        self._carrying = tuple(int(value) for value in code)

    @property
    def cells(self) -> np.ndarray:
        """(width, height, 3) uint8 view of the map's cells (writable: it is the map)."""
        return self._grid[..., :3]

    def reset(self) -> None:
        self._buffer[:] = bytes(len(self._buffer))

    def update(self, env: MiniGridEnv, view: np.ndarray) -> None:
        """Merge one view image (as in MiniGrid's obs["image"]) taken by `env`'s agent."""
        ax, ay = env.agent_pos
        last = getattr(env, "last_view", None)
        if last is not None and last.image is view and last.shape == (self.width, self.height):
            buffer = self._buffer  # teacher_wrappers.view.gen_obs made the view: its cells are known
            for start, (kind, colour, state) in last.seen:
                buffer[start] = kind
                buffer[start + 1] = colour
                buffer[start + 2] = state
        else:
            self._merge(env, view)
        self.agent_pos, self.agent_dir = (int(ax), int(ay)), int(env.agent_dir)
        self._carrying = EMPTY_CODE if env.carrying is None else env.carrying.encode()

    def _merge(self, env: MiniGridEnv, view: np.ndarray) -> None:
        size = view.shape[0]
        ax, ay = env.agent_pos
        dx, dy = view_offsets(env.agent_dir, size)
        xs, ys = dx + ax, dy + ay
        width, height = self.width, self.height
        seen = (view[..., 0] > 0) & (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
        # The view shows what the agent carries at its own cell; the map keeps the floor beneath it.
        seen[size // 2, size - 1] = False
        cells = self.cells
        cells[xs[seen], ys[seen]] = view[seen]
        under = env.grid.get(ax, ay)
        cells[ax, ay] = EMPTY if under is None else under.encode()

    def observation(self) -> np.ndarray:
        obs = self._grid.copy()
        ax, ay = self.agent_pos
        kind, colour, state = self._carrying
        obs[ax, ay, 0] = kind  # item by item: cheaper than assigning a sequence
        obs[ax, ay, 1] = colour
        obs[ax, ay, 2] = state
        obs[ax, ay, 3] = self.agent_dir + 1
        return obs


class MemoryMapObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replaces a MiniGrid observation by {"image": memory map, "mission": parsed mission}.

    "image" is the memory map (see the module docstring). "mission" is the episode's mission parsed
    into a fixed-size uint8 vector (`teacher_wrappers.mission.encode`: per instruction its action,
    object type, colour and location word, the second object of "put next to", then the start pose
    that location words refer to), so a student can see what a BabyAI or MiniGrid episode asks.
    `with_mission=False` leaves it out (the paper tasks: their mission is always "open the door").
    """

    def __init__(self, env: gym.Env, with_mission: bool = True):
        gym.utils.RecordConstructorArgs.__init__(self, with_mission=with_mission)
        gym.ObservationWrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, MiniGridEnv):
            raise TypeError(f"MemoryMapObservation needs a MiniGrid environment, got {type(base).__name__}")
        self.memory_map = MemoryMap(base.width, base.height)
        shape = (base.width, base.height, 4)
        spaces = {"image": gym.spaces.Box(0, 255, shape, dtype=np.uint8)}
        if with_mission:
            spaces["mission"] = gym.spaces.Box(0, 255, (mission.VECTOR_SIZE,), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.with_mission = with_mission
        self._mission = np.zeros(mission.VECTOR_SIZE, dtype=np.uint8)

    def reset(self, **kwargs):
        self.memory_map.reset()
        obs, info = self.env.reset(**kwargs)
        self._mission = mission.encode(mission.start_mission(self.env))  # the pose at reset: read it now
        return self.observation(obs), info

    def observation(self, observation):
        self.memory_map.update(self.env.unwrapped, observation["image"])
        if not self.with_mission:
            return {"image": self.memory_map.observation()}
        return {"image": self.memory_map.observation(), "mission": self._mission.copy()}
