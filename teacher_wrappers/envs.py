"""The four teacher tasks, generated as in the reference code so its recorded LLM answers apply.

Every task is a 10x10 grid (TwoDoor: 20x20) with a room at the top-left corner and locked door(s)
in the room's wall. The agent sees a 3x3 patch; the episode ends with success when it opens a door.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import COLOR_NAMES, DIR_TO_VEC
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Door, Key, Lava
from minigrid.minigrid_env import MiniGridEnv

from teacher_wrappers import view

NAMESPACE = "TeacherWrappers"
TASKS = ("SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey", "TwoDoor")

# Door walls of the room, in the reference's order: east, south, west, north.
_WALLS = (0, 1, 2, 3)
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = (int(action) for action in Actions)
_DIR_TO_VEC = tuple((int(dx), int(dy)) for dx, dy in DIR_TO_VEC)


def _mission() -> str:
    return "open the door"


class DoorTaskEnv(MiniGridEnv):
    """A room of random size in the top-left corner of the grid with one locked door.

    Subclasses add lava, distractor keys or a second door. Class attributes tell the teacher how to
    describe the task (`text_style`) and which recorded plan table belongs to it (`recorded_table`).
    """

    text_style = "plain"
    recorded_table = "SimpleDoorKey"
    # MiniGrid's observation exactly, without building Grid objects (and it tells the memory map what it saw)
    gen_obs = view.gen_obs
    # Nothing moves by itself and a step draws no random numbers: only the agent changes the grid, and only the
    # cell in front of it. Seen through the memory map, a repeated observation is then a repeated state, and a
    # policy of the observation alone that repeats one is in a loop (`training.play_episodes(stop_loops=True)`).
    static_world = True

    def __init__(self, size: int = 10, min_room: int = 5, max_room: int = 10, agent_view_size: int = 3,
                 max_steps: int = 150, **kwargs):
        self.min_room, self.max_room = min_room, max_room
        self.doors: list[Door] = []
        super().__init__(mission_space=MissionSpace(mission_func=_mission), width=size,
                         height=size, agent_view_size=agent_view_size, max_steps=max_steps, **kwargs)

    def _gen_grid(self, width, height):
        self.grid = Grid(width, height)
        room_w = self._rand_int(self.min_room, self.max_room + 1)
        room_h = self._rand_int(self.min_room, self.max_room + 1)
        self.grid.wall_rect(0, 0, room_w, room_h)
        self.room = (room_w, room_h)
        self._populate(room_w, room_h)
        self.mission = "open the door"

    def _door_position(self, wall: int, room_w: int, room_h: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """A random door cell on `wall` and the room cell in front of it."""
        if wall in (0, 2):
            y = self._rand_int(1, room_h - 1)
            x = room_w - 1 if wall == 0 else 0
            return (x, y), (x - 1 if wall == 0 else 1, y)
        x = self._rand_int(1, room_w - 1)
        y = room_h - 1 if wall == 1 else 0
        return (x, y), (x, y - 1 if wall == 1 else 1)

    def _populate(self, room_w: int, room_h: int) -> None:
        door_pos, _ = self._door_position(self._rand_elem(_WALLS), room_w, room_h)
        color = self._rand_elem(sorted(COLOR_NAMES))
        self._add_door(door_pos, color)
        self.place_agent((0, 0), (room_w, room_h), rand_dir=True)
        self.place_obj(Key(color), (0, 0), (room_w, room_h))

    def _add_door(self, pos: tuple[int, int], color: str) -> None:
        door = Door(color, is_locked=True)
        self.grid.set(*pos, door)
        self.doors.append(door)

    def reset(self, *, seed=None, options=None):
        self.doors = []
        return super().reset(seed=seed, options=options)

    def step(self, action):
        """MiniGrid's step (`MiniGridEnv.step`, the same state, reward and flags: tests/test_view.py checks it),
        with integer arithmetic instead of NumPy's for the cell in front; then the success of opening a door."""
        self.step_count += 1
        reward = 0
        terminated = False
        truncated = False
        direction = self.agent_dir
        assert 0 <= direction < 4, f"Invalid agent_dir: {direction} is not within range(0, 4)"
        dx, dy = _DIR_TO_VEC[direction]
        ax, ay = self.agent_pos
        fx, fy = int(ax) + dx, int(ay) + dy
        fwd_cell = self.grid.get(fx, fy)
        if action == LEFT:
            self.agent_dir -= 1
            if self.agent_dir < 0:
                self.agent_dir += 4
        elif action == RIGHT:
            self.agent_dir = (self.agent_dir + 1) % 4
        elif action == FORWARD:
            if fwd_cell is None or fwd_cell.can_overlap():
                self.agent_pos = (np.int64(fx), np.int64(fy))  # what MiniGrid's tuple(NumPy position) holds
            if fwd_cell is not None and fwd_cell.type == "goal":
                terminated = True
                reward = self._reward()
            if fwd_cell is not None and fwd_cell.type == "lava":
                terminated = True
        elif action == PICKUP:
            if fwd_cell and fwd_cell.can_pickup() and self.carrying is None:
                self.carrying = fwd_cell
                self.carrying.cur_pos = np.array([-1, -1])
                self.grid.set(fx, fy, None)
        elif action == DROP:
            if not fwd_cell and self.carrying:
                self.grid.set(fx, fy, self.carrying)
                self.carrying.cur_pos = np.array((fx, fy))
                self.carrying = None
        elif action == TOGGLE:
            if fwd_cell:
                fwd_cell.toggle(self, np.array((fx, fy)))
        elif action == DONE:
            pass
        else:
            raise ValueError(f"Unknown action: {action}")
        if self.step_count >= self.max_steps:
            truncated = True
        if self.render_mode == "human":
            self.render()
        obs = self.gen_obs()
        opened = action == TOGGLE and any(door.is_open for door in self.doors)
        if opened:
            reward, terminated = self._reward(), True
        return obs, reward, terminated, truncated, {"success": bool(opened)}


class SimpleDoorKeyEnv(DoorTaskEnv):
    """A locked door of random colour and its key somewhere in the room."""


class LavaDoorKeyEnv(DoorTaskEnv):
    """SimpleDoorKey plus one lava cell, never on the cell in front of the door."""

    def _populate(self, room_w, room_h):
        door_pos, front = self._door_position(self._rand_elem(_WALLS), room_w, room_h)
        color = self._rand_elem(sorted(COLOR_NAMES))
        self._add_door(door_pos, color)
        self.place_agent((0, 0), (room_w, room_h), rand_dir=True)
        self.place_obj(Key(color), (0, 0), (room_w, room_h))
        self.place_obj(Lava(), (0, 0), (room_w, room_h), reject_fn=lambda _env, pos: tuple(pos) == front)


class ColoredDoorKeyEnv(DoorTaskEnv):
    """A blue locked door, its blue key and a red distractor key (neither in front of the door)."""

    text_style = "colored"
    recorded_table = "ColoredDoorKey"

    def _populate(self, room_w, room_h):
        door_pos, front = self._door_position(self._rand_elem(_WALLS), room_w, room_h)
        self._add_door(door_pos, "blue")
        self.place_agent((0, 0), (room_w, room_h), rand_dir=True)
        for color in ("blue", "red"):
            self.place_obj(Key(color), (0, 0), (room_w, room_h), reject_fn=lambda _env, pos: tuple(pos) == front)


class TwoDoorEnv(DoorTaskEnv):
    """A 20x20 room with two locked doors on opposite walls and one key near the centre."""

    text_style = "numbered_doors"
    recorded_table = "TwoDoor"

    def __init__(self, size: int = 20, min_room: int = 20, max_room: int = 20, max_steps: int = 400, **kwargs):
        super().__init__(size=size, min_room=min_room, max_room=max_room, max_steps=max_steps, **kwargs)

    def _populate(self, room_w, room_h):
        east_west = self._rand_elem((0, 1)) == 0
        walls = (0, 2) if east_west else (1, 3)
        positions = [self._door_position(wall, room_w, room_h)[0] for wall in walls]
        color = self._rand_elem(sorted(COLOR_NAMES))
        for pos in positions:
            self._add_door(pos, color)
        self.place_obj(Key(color), (room_w // 2 - 1, room_h // 2 - 1), (2, 2))
        self.place_agent((0, 0), (room_w, room_h), rand_dir=True)


def make_task(task_class: type[DoorTaskEnv], memory: bool = True, **kwargs) -> gym.Env:
    """Entry point for `gymnasium.make`: the task, observed through its memory map by default."""
    env = task_class(**kwargs)
    if memory:
        from teacher_wrappers.memory import MemoryMapObservation

        env = MemoryMapObservation(env, with_mission=False)  # the mission is always "open the door"
    return env


def register_tasks() -> None:
    classes = {"SimpleDoorKey": SimpleDoorKeyEnv, "LavaDoorKey": LavaDoorKeyEnv,
               "ColoredDoorKey": ColoredDoorKeyEnv, "TwoDoor": TwoDoorEnv}
    for name, cls in classes.items():
        env_id = f"{NAMESPACE}/{name}-v0"
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=make_task, kwargs={"task_class": cls},
                         max_episode_steps=None, disable_env_checker=False)
