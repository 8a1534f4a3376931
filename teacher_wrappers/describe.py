"""What every text style's description is made of: the text and where each named object is.

The styles themselves (the paper's `llm4teach-v1`, the suite's `tw-suite-v1`) live in
`teacher_wrappers.styles`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Description:
    """What the planner is told, and where each named object is on the map."""

    text: str
    objects: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    held: str | None = None


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
