"""Teacher: planner + skills -> a distribution over the agent's actions.

Every step the memory map is described in text, the planner answers a distribution over plans
(memoised per text, so a recurring text costs one query), and each plan is pushed through the
skills: its first option that still has something to do picks the plan's action. The teacher's
action distribution is the plans' probabilities summed per action (the reference's soft teacher).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from teacher_wrappers.describe import Description, agent_state, describe
from teacher_wrappers.planners import Planner, make_planner
from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.plans import Option, parse_plan
from teacher_wrappers.skills import LEFT, RIGHT, SKILL_FUNCTIONS, MapView, cells_key_of, explore

N_ACTIONS = 7  # MiniGrid's action set
DONE = 6
EXPLORE = Option("explore")
LOOP_LIMIT = 4


@dataclass
class TeacherStats:
    steps: int = 0
    queries: int = 0  # texts the planner had to answer
    cache_hits: int = 0  # steps whose answer needed no live model or server call
    unknown_texts: int = 0  # texts the planner had no answer for (a recorded table's gaps), answered by its fallback
    llm_calls: int = 0  # texts a live LLM had to answer (the teacher's memo and the answer cache missed)
    planner_seconds: float = 0.0  # time spent in the planner (the LLM) alone
    unparsed_steps: int = 0  # plan steps no skill can carry out, summed over the answers received
    unresolved_targets: int = 0  # options naming an object the agent has not seen
    fallbacks: int = 0  # plans with no option left to act on, where the teacher explored instead
    loop_breaks: int = 0  # steps in a state revisited LOOP_LIMIT times, where the suggestion was loosened


@dataclass
class Suggestion:
    probs: np.ndarray
    plan: str  # the most probable plan
    option: str  # the option that acts in the most probable plan
    loosened: np.ndarray | None = None  # the probabilities used in a loop, computed when first needed


class Teacher:
    """Turns memory maps into action distributions with a planner and the skills."""

    plan_parser = staticmethod(parse_plan)  # how answers are parsed, to count their unparsed steps
    # The action when no plan has anything left to do and nothing unseen is in reach. The paper's tasks
    # keep the reference's `done` (a no-op there; their recorded figures depend on it); on other
    # MiniGrid envs `done` can end the episode at reward 0, so wrappers set LEFT (turn, look around).
    idle_action = DONE

    def __init__(self, planner: Planner | str = "recorded", text_style: str = "plain", **planner_kwargs):
        self.planner = make_planner(planner, **planner_kwargs) if isinstance(planner, str) else planner
        self.text_style = text_style
        self.memo: dict[str, PlanDistribution] = {}
        self.unknown: set[str] = set()  # memoised texts whose answer came from no table or model
        self.field_cache: dict = {}  # distance fields shared by the skills across steps
        self.description_memo: dict[tuple[bytes, tuple[int, int] | None], Description] = {}
        self.suggestion_memo: dict[tuple[bytes, int], Suggestion] = {}
        self.stats = TeacherStats()

    def plans_for(self, texts: Sequence[str]) -> list[tuple[PlanDistribution, bool]]:
        """Plan distributions for a batch of texts with one planner call for all memo misses."""
        missing = sorted({text for text in texts if text not in self.memo})
        if missing:
            start = time.perf_counter()
            answers = self.planner.plan(missing)
            self.stats.planner_seconds += time.perf_counter() - start
            for text, answer in zip(missing, answers):
                self.memo[text] = answer
                self.stats.unparsed_steps += sum(self.plan_parser(plan).unknown_steps for plan, _ in answer)
            self.stats.queries += len(missing)
            unknown = getattr(self.planner, "last_unknown", set()) & set(missing)
            self.unknown.update(unknown)
            self.stats.unknown_texts += len(unknown)
        live = self.planner.last_misses if missing else set()
        # A text the planner did not know is never a cache hit, however often it recurs.
        hits = [not (text in missing and text in live) and text not in self.unknown for text in texts]
        self.stats.llm_calls += len(live & set(missing))
        self.stats.cache_hits += sum(hits)
        return [(self.memo[text], hit) for text, hit in zip(texts, hits)]

    def act(self, memory_maps: Sequence[np.ndarray], visits: Sequence[int] | None = None
            ) -> list[tuple[np.ndarray, dict]]:
        """(action probabilities, info) for each memory map of a batch.

        `visits` counts how often each map was already seen this episode. LLM plans can cycle (drop a
        key, pick the same key up again, forever); from the LOOP_LIMIT-th visit of the same state the
        suggestion is loosened (see `_break_loop`), which breaks the cycle.
        """
        keys = [memory_map.tobytes() for memory_map in memory_maps]
        cell_keys = [cells_key_of(memory_map, agent_state(memory_map)[0]) for memory_map in memory_maps]
        descriptions = [self._described(memory_map, key) for memory_map, key in zip(memory_maps, cell_keys)]
        answers = self.plans_for([d.text for d in descriptions])
        results = []
        for i, (key, memory_map, description, (plans, hit)) in enumerate(
                zip(keys, memory_maps, descriptions, answers)):
            suggestion = self._suggestion(key, memory_map, cell_keys[i], description, plans)
            info = {"text": description.text, "plan": suggestion.plan, "option": suggestion.option,
                    "cache_hit": hit}
            probs = suggestion.probs
            if visits is not None and visits[i] >= LOOP_LIMIT:
                if suggestion.loosened is None:
                    suggestion.loosened = self._break_loop(probs, memory_map)
                probs = suggestion.loosened
                info["loop_break"] = True
                self.stats.loop_breaks += 1
            results.append((probs.copy(), info))
        self.stats.steps += len(memory_maps)
        return results

    def _suggestion(self, key: bytes, memory_map: np.ndarray, cells_key, description: Description,
                    plans: PlanDistribution) -> Suggestion:
        # A pure function of the map and the plans: a state seen before costs one lookup.
        memo_key = (key, id(plans))
        if memo_key not in self.suggestion_memo:
            view = MapView(memory_map, self.field_cache, cells_key)
            self._bound(self.suggestion_memo)[memo_key] = Suggestion(*self._soft_action(view, description.objects,
                                                                                       plans))
        return self.suggestion_memo[memo_key]

    def _break_loop(self, probs: np.ndarray, memory_map: np.ndarray) -> np.ndarray:
        """Half the suggestion, half a uniform choice among its actions and an exploring one.

        Flattening gives the LLM's less likely plans (often the right ones) a fair chance; exploring
        reveals new facts. Where nothing is left unseen, exploring means turning on the spot.
        """
        candidates = probs > 0
        action = explore(MapView(memory_map, self.field_cache), set())
        if action is None:
            candidates[[LEFT, RIGHT]] = True
        else:
            candidates[action] = True
        return (0.5 * probs + 0.5 * candidates / candidates.sum()).astype(np.float32)

    def _described(self, memory_map: np.ndarray, cells_key) -> Description:
        # Turning on the spot or walking through known cells empty-handed keeps the text: a memo hit.
        if cells_key not in self.description_memo:
            self._bound(self.description_memo)[cells_key] = describe(memory_map, self.text_style)
        return self.description_memo[cells_key]

    @staticmethod
    def _bound(memo: dict, limit: int = 50_000) -> dict:
        """Keep memos from growing without bound over long runs."""
        if len(memo) >= limit:
            memo.clear()
        return memo

    def _soft_action(self, view: MapView, objects: dict, plans: PlanDistribution):
        probs = np.zeros(N_ACTIONS, dtype=np.float32)
        memo: dict[Option, int | None] = {}
        top_plan, top_option, top_prob = "", "", -1.0
        for plan, prob in plans:
            option, action = self._first_action(view, objects, parse_plan(plan).options, memo)
            probs[action] += prob
            if prob > top_prob:
                top_plan, top_option, top_prob = plan, str(option), prob
        if not plans:
            option, action = self._first_action(view, objects, (), memo)
            probs[action], top_option = 1.0, str(option)
        return probs / probs.sum(), top_plan, top_option

    def _first_action(self, view: MapView, objects: dict, options, memo) -> tuple[Option, int]:
        for option in options:
            if option not in memo:
                memo[option] = self._option_action(view, objects, option)
            if memo[option] is not None:
                return option, memo[option]
        self.stats.fallbacks += 1
        if EXPLORE not in memo:
            memo[EXPLORE] = self._option_action(view, objects, EXPLORE)
        return EXPLORE, self.idle_action if memo[EXPLORE] is None else memo[EXPLORE]

    def _option_action(self, view: MapView, objects: dict, option: Option) -> int | None:
        targets = set()
        if option.target is not None:
            if option.target not in objects:
                self.stats.unresolved_targets += 1
                return None
            targets = set(objects[option.target])
        return SKILL_FUNCTIONS[option.skill](view, targets)

    def summary(self) -> dict:
        """Counters plus derived rates, for logs and benchmark reports."""
        stats = asdict(self.stats)
        stats["queries_per_1000_steps"] = 1000 * self.stats.queries / max(self.stats.steps, 1)
        stats["llm_calls_per_1000_steps"] = 1000 * self.stats.llm_calls / max(self.stats.steps, 1)
        stats["seconds_per_query"] = self.stats.planner_seconds / max(self.stats.queries, 1)
        stats["planner"] = self.planner.name
        return stats
