"""The teacher for the wider MiniGrid/BabyAI suite: the mission-aware text style and skills.

Same pipeline as `Teacher` (text -> planner -> plans -> skills -> action distribution), with the
suite's text (`describe_suite`), plan steps (`put <X> near <Y>`, `done`, any object name) and skills
(`skills_suite`). Each environment's mission comes with its memory map. Unlike the paper tasks'
teacher, when no plan has anything left to do it turns on the spot rather than suggesting `done`:
only a plan's own `done` step (a mission that ends by stopping) puts weight on it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from teacher_wrappers.describe import Description, agent_state
from teacher_wrappers.describe_suite import SUITE_STYLE, describe_suite, parse_name
from teacher_wrappers.mission import GO_TO, OPEN, Mission
from teacher_wrappers.planners import Planner
from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.skills import LEFT, RIGHT, cells_key_of
from teacher_wrappers.skills_suite import SUITE_SKILLS, SuiteMapView, explore, put_near
from teacher_wrappers.teacher import N_ACTIONS, Suggestion, Teacher

NO_MISSION = Mission(())


class SuiteOption(NamedTuple):
    skill: str
    target: str | None = None
    target2: str | None = None  # `put <target> near <target2>`

    def __str__(self) -> str:
        if self.skill == "put near":
            return f"put <{self.target}> near <{self.target2}>"
        return self.skill if self.target is None else f"{self.skill} <{self.target}>"


class SuitePlan(NamedTuple):
    options: tuple[SuiteOption, ...]
    unknown_steps: int


EXPLORE = SuiteOption("explore")
_STEP = re.compile(r"^(?P<skill>go to|pick up|drop|open) <(?P<target>[^<>]+)>(?: with <[^>]*>)?$")
_PUT = re.compile(r"^put <(?P<target>[^<>]+)> (?:near|next to) <(?P<target2>[^<>]+)>$")


def parse_suite_step(step: str) -> SuiteOption | None:
    step = re.sub(r"\s+", " ", step.strip().lower()).rstrip(".").strip()
    step = re.sub(r"<\s*(.*?)\s*>", r"<\1>", re.sub(r"^(?:then|and) ", "", step))
    if step in ("explore", "done") or step.startswith("explore "):
        return SuiteOption(step.split(" ")[0])
    if match := _PUT.match(step):
        return SuiteOption("put near", match["target"], match["target2"])
    if match := _STEP.match(step):
        return SuiteOption(match["skill"], match["target"])
    return None


@functools.lru_cache(maxsize=4096)
def parse_suite_plan(plan: str) -> SuitePlan:
    """A plan of the suite's steps; steps no skill can carry out are skipped and counted."""
    steps = [parse_suite_step(step) for step in plan.split(",") if step.strip()]
    return SuitePlan(tuple(s for s in steps if s is not None), sum(s is None for s in steps))


def reserved_doors(description: Description, mission: Mission) -> frozenset[tuple[int, int]]:
    """Cells of the doors the mission names in a `go to` or `open`: only a plan step may open them."""
    descs = [instr.obj for instr in mission.instrs if instr.action in (GO_TO, OPEN) and instr.obj is not None]
    cells = set()
    for name, positions in description.objects.items():
        parsed = parse_name(name)
        if parsed is not None and parsed.type == "door" and any(parsed.fits(desc) for desc in descs):
            cells.update(positions)
    return frozenset(cells)


class SuiteTeacher(Teacher):
    """Turns (memory map, mission) pairs into action distributions for any MiniGrid/BabyAI mission."""

    plan_parser = staticmethod(parse_suite_plan)  # counts the suite's unparsed plan steps

    def __init__(self, planner: Planner | str = "rules", **planner_kwargs):
        super().__init__(planner, text_style=SUITE_STYLE, **planner_kwargs)
        self.reserved_memo: dict = {}

    def act(self, memory_maps: Sequence[np.ndarray], visits: Sequence[int] | None = None,
            missions: Sequence[Mission] | None = None) -> list[tuple[np.ndarray, dict]]:
        """(action probabilities, info) for each memory map and mission of a batch (see `Teacher.act`)."""
        missions = list(missions) if missions is not None else [NO_MISSION] * len(memory_maps)
        keys = [(cells_key_of(m, agent_state(m)[0]), mission) for m, mission in zip(memory_maps, missions)]
        descriptions = [self._described_suite(m, key) for m, key in zip(memory_maps, keys)]
        answers = self.plans_for([d.text for d in descriptions])
        results = []
        for i, (memory_map, key, description, (plans, hit)) in enumerate(
                zip(memory_maps, keys, descriptions, answers)):
            suggestion = self._suite_suggestion(memory_map, key, description, plans)
            info = {"text": description.text, "plan": suggestion.plan, "option": suggestion.option,
                    "cache_hit": hit}
            probs = suggestion.probs
            if visits is not None and visits[i] >= 4:
                if suggestion.loosened is None:
                    suggestion.loosened = self._loosen(probs, memory_map, key)
                probs = suggestion.loosened
                info["loop_break"] = True
                self.stats.loop_breaks += 1
            results.append((probs.copy(), info))
        self.stats.steps += len(memory_maps)
        return results

    def _described_suite(self, memory_map: np.ndarray, key) -> Description:
        if key not in self.description_memo:
            description = describe_suite(memory_map, key[1])
            self._bound(self.description_memo)[key] = description
            self._bound(self.reserved_memo)[key] = reserved_doors(description, key[1])
        return self.description_memo[key]

    def _view(self, memory_map: np.ndarray, key) -> SuiteMapView:
        return SuiteMapView(memory_map, self.field_cache, key, self.reserved_memo.get(key, frozenset()))

    def _suite_suggestion(self, memory_map, key, description: Description, plans: PlanDistribution) -> Suggestion:
        memo_key = (memory_map.tobytes(), key[1], id(plans))
        if memo_key not in self.suggestion_memo:
            view = self._view(memory_map, key)
            self._bound(self.suggestion_memo)[memo_key] = Suggestion(*self._suite_soft_action(
                view, description.objects, plans))
        return self.suggestion_memo[memo_key]

    def _loosen(self, probs: np.ndarray, memory_map: np.ndarray, key) -> np.ndarray:
        """As `Teacher._break_loop`, with the suite's exploring (through closed doors)."""
        candidates = probs > 0
        action = explore(self._view(memory_map, key), set())
        candidates[[LEFT, RIGHT] if action is None else action] = True
        return (0.5 * probs + 0.5 * candidates / candidates.sum()).astype(np.float32)

    def _suite_soft_action(self, view: SuiteMapView, objects: dict, plans: PlanDistribution):
        probs = np.zeros(N_ACTIONS, dtype=np.float32)
        memo: dict = {}
        top_plan, top_option, top_prob = "", "", -1.0
        for plan, prob in plans or [("", 1.0)]:
            option, action = self._suite_first_action(view, objects, parse_suite_plan(plan).options, memo)
            probs[action] += prob
            if prob > top_prob:
                top_plan, top_option, top_prob = plan, str(option), prob
        return probs / probs.sum(), top_plan, top_option

    def _suite_first_action(self, view: SuiteMapView, objects: dict, options, memo) -> tuple[SuiteOption, int]:
        for option in options:
            if option not in memo:
                memo[option] = self._suite_option_action(view, objects, option)
            if memo[option] is not None:
                return option, memo[option]
        self.stats.fallbacks += 1
        if EXPLORE not in memo:
            memo[EXPLORE] = explore(view, set())
        # Nothing left to do and nothing unseen within reach: turn (never `done`, which may end the episode).
        return EXPLORE, LEFT if memo[EXPLORE] is None else memo[EXPLORE]

    def _suite_option_action(self, view: SuiteMapView, objects: dict, option: SuiteOption) -> int | None:
        targets = []
        for name in (option.target, option.target2):
            if name is None:
                continue
            if name not in objects:
                self.stats.unresolved_targets += 1
                return None
            targets.append(set(objects[name]))
        if option.skill == "put near":
            return put_near(view, *targets)
        return SUITE_SKILLS[option.skill](view, targets[0] if targets else set())
