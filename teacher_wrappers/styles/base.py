"""The text style interface: what differs between the ways a memory map can be put into words, and the
`Description` every style's `describe` returns."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from teacher_wrappers.mission import Mission
from teacher_wrappers.plans import BARE_STEPS, PAPER_NAMES, ParsedPlan, parse_plan
from teacher_wrappers.skills import LEFT, PAPER_SKILLS, MapView


@dataclass
class Description:
    """What a style's `describe` gives: the planner's text, and where each named object is on the map."""

    text: str
    objects: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    held: str | None = None


class TextStyle:
    """A text style: the teacher's words for a memory map, the plans it accepts and the skills behind them.

    A style brings what differs between MiniGrid-like environments; the Teacher does the rest (memos,
    the planner call, pushing plans through the skills, loop breaking, counters). Subclass it, set the
    class attributes and implement `describe` (and, for the rules planner, `rule_plan`); see
    docs/styles.md for a worked example.
    """

    name = "style"  # what `text_style=` names it; also checked when a teacher's state is loaded
    format_version = ""  # the text format: recorded tables hold answers for one format
    prompt_version = ""  # part of every answer-cache key: change it with the prompt or the format
    uses_mission = False  # whether texts depend on the mission (suggestions are then kept per mission)
    skills: dict[str, Callable[..., int | None]] = PAPER_SKILLS  # step name -> skill(view, *cells) -> action
    names = PAPER_NAMES  # regex of the object names a plan step may name
    bare_steps = BARE_STEPS  # skills a plan names without an object ("explore"); the others take one
    system_prompt = ""  # an LLM planner's instructions
    example: tuple[str, str] = ("", "")  # one worked (description, answer) pair shown before the question
    idle_action = LEFT  # when no plan has anything left to do and nothing is unseen: turn, never `done`

    def describe(self, memory_map: np.ndarray, mission: Mission) -> Description:
        """The planner's text, and where each object it names is on the map."""
        raise NotImplementedError

    def description_key(self, memory_map: np.ndarray, agent: tuple[int, int], mission: Mission) -> Hashable | None:
        """A cheap key of everything `describe` reads, where it reads less than the whole map (so that
        walking, turning and seeing new floor reuse the text); None: no such key."""
        return None

    def parse_plan(self, plan: str) -> ParsedPlan:
        """A plan's options; steps no skill of this style can carry out are skipped and counted."""
        return parse_plan(plan, frozenset(self.skills), self.names, frozenset(self.bare_steps))

    def admissible_plans(self, text: str) -> list[str]:
        """The plans a planner may choose from (LLMs score them by likelihood); "explore" first."""
        raise NotImplementedError(f"text style {self.name!r} lists no admissible plans")

    def rule_plan(self, text: str) -> str:
        """The hand-written rules' plan for a text (the `rules` planner)."""
        raise NotImplementedError(f"text style {self.name!r} has no rules; use another planner")

    def user_prompt(self, text: str) -> str:
        """What an LLM planner is asked for a text."""
        return text

    def map_view(self, memory_map: np.ndarray, field_cache: dict, cells_key: Hashable, state,
                 description: Description, mission: Mission) -> MapView:
        """The map as this style's skills see it (paths are cached by `cells_key`)."""
        return MapView(memory_map, field_cache, cells_key, state)

    def __repr__(self) -> str:
        return f"<text style {self.name!r} ({self.format_version})>"
