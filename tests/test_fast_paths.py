"""The teacher's byte-level shortcuts equal the NumPy formulas they replace, on random memory maps."""

import numpy as np
import pytest
from minigrid.core.constants import OBJECT_TO_IDX, STATE_TO_IDX

from teacher_wrappers.memory import agent_state
from teacher_wrappers.skills import MapView, _near_unseen
from teacher_wrappers.styles.paper import description_key

KINDS = [OBJECT_TO_IDX[name] for name in ("unseen", "empty", "wall", "floor", "door", "key", "ball", "box", "goal",
                                          "lava")]
WALKABLE = [OBJECT_TO_IDX[name] for name in ("empty", "floor", "goal")]
DOOR, OPEN, CLOSED = OBJECT_TO_IDX["door"], STATE_TO_IDX["open"], STATE_TO_IDX["closed"]


def random_map(rng, width, height):
    memory_map = np.zeros((width, height, 4), dtype=np.uint8)
    memory_map[..., 0] = rng.choice(KINDS, size=(width, height), p=[0.3, 0.3, 0.2] + [0.2 / 7] * 7)
    memory_map[..., 1] = rng.integers(0, 6, size=(width, height))
    memory_map[..., 2] = np.where(memory_map[..., 0] == DOOR, rng.integers(0, 3, size=(width, height)), 0)
    agent = (int(rng.integers(width)), int(rng.integers(height)))
    memory_map[agent + (3,)] = rng.integers(1, 5)
    return memory_map, agent


def numpy_template(memory_map, agent, passable_doors=False, reserved=frozenset()):
    """The field template as MapView computed it with NumPy."""
    kinds, states = memory_map[..., 0], memory_map[..., 2]
    template = np.where(np.isin(kinds, WALKABLE) | ((kinds == DOOR) & (states == OPEN)), -1, -2).astype(np.int8)
    if passable_doors:
        template[(kinds == DOOR) & (states == CLOSED)] = -1
        for cell in reserved:
            if states[cell] != OPEN:
                template[cell] = -2
    template[agent] = -1
    return template


@pytest.mark.parametrize("size", [(5, 5), (10, 10), (20, 20), (7, 11)])
def test_map_shortcuts_equal_numpy(size):
    rng = np.random.default_rng(size[0] * 100 + size[1])
    for _ in range(150):
        memory_map, agent = random_map(rng, *size)
        state = agent_state(memory_map)
        assert state == (agent, int(memory_map[agent + (3,)]) - 1)
        assert agent_state(memory_map, memory_map.tobytes()) == state
        passable = bool(rng.random() < 0.5)
        doors = [tuple(cell) for cell in np.argwhere(memory_map[..., 0] == DOOR).tolist()]
        reserved = frozenset(doors[:1]) if passable else frozenset()
        view = MapView(memory_map, {}, b"key", state, passable_doors=passable, reserved=reserved)
        template = numpy_template(memory_map, agent, passable, reserved)
        assert view.field_template == template.ravel().tolist()
        assert np.array_equal(view.walkable, template == -1)
        # Explore's sources: walkable cells next to an unseen one (beyond the grid is not unseen).
        unseen = np.zeros((size[0] + 2, size[1] + 2), dtype=bool)
        unseen[1:-1, 1:-1] = memory_map[..., 0] == OBJECT_TO_IDX["unseen"]
        near = unseen[2:, 1:-1] | unseen[:-2, 1:-1] | unseen[1:-1, 2:] | unseen[1:-1, :-2]
        expected = np.flatnonzero((template == -1) & near).tolist()
        _, template_bytes, kinds = view._walkable_both()
        assert _near_unseen(kinds, template_bytes, *size) == expected


def test_agent_state_needs_one_agent_cell():
    memory_map = np.zeros((6, 6, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="found 0"):
        agent_state(memory_map)
    memory_map[1, 2, 3] = memory_map[3, 4, 3] = 1
    with pytest.raises(ValueError, match="found 2"):
        agent_state(memory_map)


def test_description_key_tells_maps_apart_as_before():
    """Two maps share a description key exactly when they shared the NumPy one: where the named objects
    are, their codes, and the agent's cell if it holds one."""
    named = np.isin(np.arange(256), [OBJECT_TO_IDX["key"], OBJECT_TO_IDX["door"], OBJECT_TO_IDX["goal"]])

    def numpy_key(memory_map, agent):
        kinds = memory_map[..., 0]
        where = np.flatnonzero(named[kinds])
        held = agent[0] * kinds.shape[1] + agent[1] if named[kinds[agent]] else -1
        return where.tobytes(), memory_map.reshape(-1, 4)[where, :3].tobytes(), held

    rng = np.random.default_rng(0)
    maps = [random_map(rng, 6, 6) for _ in range(40)]
    maps += [(m.copy(), a) for m, a in maps[:20]]  # equal maps
    for memory_map, _ in maps[40:50]:  # and maps that differ only in unnamed cells
        memory_map[..., 0] = np.where(named[memory_map[..., 0]], memory_map[..., 0], OBJECT_TO_IDX["wall"])
    keys = [(description_key(m, a), numpy_key(m, a)) for m, a in maps]
    for new_a, old_a in keys:
        for new_b, old_b in keys:
            assert (new_a == new_b) == (old_a == old_b)
