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


def agent_state(memory_map: np.ndarray) -> tuple[tuple[int, int], int]:
    """(agent position, heading) read off channel 3 of a memory map."""
    headings = memory_map[..., 3]
    count = np.count_nonzero(headings)
    if count != 1:
        raise ValueError(f"a memory map must mark exactly one agent cell, found {count}")
    x, y = divmod(int(headings.argmax()), headings.shape[1])
    return (x, y), int(headings[x, y]) - 1
