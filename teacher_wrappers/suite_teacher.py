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
from teacher_wrappers.teacher import LOOP_LIMIT, N_ACTIONS, Suggestion, Teacher

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
        self.idle_action = LEFT
        self.reserved_memo: dict = {}  # doors only a plan step may open, by (cells key, mission)

    def act(self, memory_maps: Sequence[np.ndarray], visits: Sequence[int] | None = None,
            keys: Sequence[bytes] | None = None, states: Sequence | None = None,
            missions: Sequence[Mission] | None = None) -> list[tuple[np.ndarray, dict]]:
        """(action probabilities, info) for each memory map and mission of a batch (see `Teacher.act`),
        with one planner call for the batch's new texts."""
        n = len(memory_maps)
        keys = [m.tobytes() for m in memory_maps] if keys is None else keys
        states = [agent_state(m) for m in memory_maps] if states is None else states
        missions = [NO_MISSION] * n if missions is None else missions
        memo_keys = [(key, mission) for key, mission in zip(keys, missions)]
        suggestions = [self.suggestion_memo.get(key) for key in memo_keys]
        missing = [i for i in range(n) if suggestions[i] is None]
        # a text the planner did not know is never a cache hit, however often it recurs
        hits = [s is not None and (not self.unknown or s.text not in self.unknown) for s in suggestions]
        self.stats.cache_hits += sum(hits)
        if missing:
            cells = {i: (cells_key_of(memory_maps[i], states[i][0], keys[i]), missions[i]) for i in missing}
            descriptions = {i: self._described_suite(memory_maps[i], cells[i]) for i in missing}
            answers = self.plans_for([descriptions[i].text for i in missing])  # counts their hits
            for i, (plans, hit) in zip(missing, answers):
                hits[i] = hit
                suggestions[i] = self.suggestion_memo.get(memo_keys[i]) or self._new_suggestion(
                    memory_maps[i], memo_keys[i], cells[i], states[i], descriptions[i], plans)
        self.stats.steps += n
        return [self._respond(memory_maps[i], suggestions[i], hits[i], None if visits is None else visits[i])
                for i in range(n)]

    def act_one(self, memory_map: np.ndarray, visits: int, key: bytes, state=None,
                mission: Mission = NO_MISSION) -> tuple[np.ndarray, dict]:
        """`act` for one map whose `tobytes()` is `key`: the single-env wrapper's per-step call."""
        [(probs, info)] = self.act([memory_map], [visits], [key], None if state is None else [state], [mission])
        return probs, info

    def _new_suggestion(self, memory_map, memo_key, cells, state, description: Description,
                        plans: PlanDistribution) -> Suggestion:
        view = self._view(memory_map, cells, state)
        tally = [0, 0]
        probs, plan, option = self._suite_soft_action(view, description.objects, plans, tally)
        suggestion = Suggestion(probs, plan, option, description.text, (cells, state), *tally)
        self._bound(self.suggestion_memo)[memo_key] = suggestion
        return suggestion

    def _respond(self, memory_map, suggestion: Suggestion, hit: bool, visits: int | None) -> tuple[np.ndarray, dict]:
        info = {"text": suggestion.text, "plan": suggestion.plan, "option": suggestion.option, "cache_hit": hit}
        self.stats.fallbacks += suggestion.fallbacks
        self.stats.unresolved_targets += suggestion.unresolved
        if visits is None or visits < LOOP_LIMIT:
            return suggestion.probs.copy(), info
        if suggestion.loosened is None:
            suggestion.loosened = self._loosen(suggestion.probs, self._view(memory_map, *suggestion.view))
        info["loop_break"] = True
        self.stats.loop_breaks += 1
        return suggestion.loosened.copy(), info

    def _described_suite(self, memory_map: np.ndarray, cells) -> Description:
        description = self.description_memo.get(cells)
        if description is None:
            description = self._bound(self.description_memo)[cells] = describe_suite(memory_map, cells[1])
        return description

    def _view(self, memory_map: np.ndarray, cells, state) -> SuiteMapView:
        reserved = self.reserved_memo.get(cells)
        if reserved is None:
            description = self._described_suite(memory_map, cells)
            reserved = self._bound(self.reserved_memo)[cells] = reserved_doors(description, cells[1])
        return SuiteMapView(memory_map, self.field_cache, cells, state, reserved)

    def _loosen(self, probs: np.ndarray, view: SuiteMapView) -> np.ndarray:
        """As `Teacher._break_loop`, with the suite's exploring (through closed doors)."""
        candidates = probs > 0
        action = explore(view, set())
        candidates[[LEFT, RIGHT] if action is None else action] = True
        return (0.5 * probs + 0.5 * candidates / candidates.sum()).astype(np.float32)

    def _suite_soft_action(self, view: SuiteMapView, objects: dict, plans: PlanDistribution, tally):
        probs = np.zeros(N_ACTIONS, dtype=np.float32)
        memo: dict = {}
        top_plan, top_option, top_prob = "", "", -1.0
        for plan, prob in plans or [("", 1.0)]:
            option, action = self._suite_first_action(view, objects, parse_suite_plan(plan).options, memo, tally)
            probs[action] += prob
            if prob > top_prob:
                top_plan, top_option, top_prob = plan, str(option), prob
        return probs / probs.sum(), top_plan, top_option

    def _suite_first_action(self, view: SuiteMapView, objects: dict, options, memo, tally) -> tuple[SuiteOption, int]:
        for option in options:
            if option not in memo:
                memo[option] = self._suite_option_action(view, objects, option, tally)
            if memo[option] is not None:
                return option, memo[option]
        tally[1] += 1
        if EXPLORE not in memo:
            memo[EXPLORE] = explore(view, set())
        # Nothing left to do and nothing unseen within reach: turn (never `done`, which may end the episode).
        return EXPLORE, self.idle_action if memo[EXPLORE] is None else memo[EXPLORE]

    def _suite_option_action(self, view: SuiteMapView, objects: dict, option: SuiteOption, tally) -> int | None:
        targets = []
        for name in (option.target, option.target2):
            if name is None:
                continue
            if name not in objects:
                tally[0] += 1
                return None
            targets.append(set(objects[name]))
        if option.skill == "put near":
            return put_near(view, *targets)
        return SUITE_SKILLS[option.skill](view, targets[0] if targets else set())
