"""Teacher: planner + skills -> a distribution over the agent's actions.

Every step the memory map is described in text, the planner answers a distribution over plans
(memoised per text, so a recurring text costs one query), and each plan is pushed through the
skills: its first option that still has something to do picks the plan's action. The teacher's
action distribution is the plans' probabilities summed per action (the reference's soft teacher).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from teacher_wrappers.describe import Description, agent_state, describe, description_key
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
    unresolved_targets: int = 0  # options naming an object the agent has not seen, summed over the steps
    fallbacks: int = 0  # plans with no option left to act on (the teacher explored instead), summed over the steps
    loop_breaks: int = 0  # steps in a state revisited LOOP_LIMIT times, where the suggestion was loosened

    def __add__(self, other: TeacherStats) -> TeacherStats:
        return TeacherStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @classmethod
    def of(cls, counters: dict) -> TeacherStats:
        """The counters of a `summary()` or `asdict()` (other keys are ignored); a clear error if one is missing."""
        missing = [f.name for f in fields(cls) if f.name not in counters]
        if missing:
            raise ValueError(f"teacher counters lack {', '.join(missing)}")
        return cls(**{f.name: counters[f.name] for f in fields(cls)})

    def summary(self) -> dict:
        """Counters plus derived rates, for logs and benchmark reports."""
        stats = asdict(self)
        stats["queries_per_1000_steps"] = 1000 * self.queries / max(self.steps, 1)
        stats["llm_calls_per_1000_steps"] = 1000 * self.llm_calls / max(self.steps, 1)
        stats["seconds_per_query"] = self.planner_seconds / max(self.queries, 1)
        return stats


@dataclass(slots=True)
class Suggestion:
    probs: np.ndarray
    plan: str  # the most probable plan
    option: str  # the option that acts in the most probable plan
    text: str  # the description the plans answer
    view: tuple  # (cells key, agent state) of the map, to rebuild its MapView for a loop break
    unresolved: int = 0  # options naming an object not on the map, counted at every step in this state
    fallbacks: int = 0  # plans with nothing left to do, counted at every step in this state
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
        self.description_memo: dict[tuple[bytes, tuple[int, int] | None], Description] = {}  # by cells key
        self.text_memo: dict[tuple[bytes, bytes, int], Description] = {}  # by description_key
        # Suggestions by memory map (its tobytes()): a pure function of the map, since a text's plans
        # never change once memoised.
        self.suggestion_memo: dict[bytes, Suggestion] = {}
        self.program_memo: dict[tuple[int, int], tuple] = {}  # see _program
        self.stats = TeacherStats()

    def plans_for(self, texts: Sequence[str]) -> list[tuple[PlanDistribution, bool]]:
        """Plan distributions for a batch of texts with one planner call for all memo misses."""
        memo = self.memo
        if all(text in memo for text in texts):  # the common case: every text answered before
            unknown = self.unknown  # a text the planner did not know is never a cache hit
            hits = [text not in unknown for text in texts] if unknown else [True] * len(texts)
            self.stats.cache_hits += sum(hits)
            return [(memo[text], hit) for text, hit in zip(texts, hits)]
        missing = sorted({text for text in texts if text not in memo})
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

    def act(self, memory_maps: Sequence[np.ndarray], visits: Sequence[int] | None = None,
            keys: Sequence[bytes] | None = None, states: Sequence | None = None) -> list[tuple[np.ndarray, dict]]:
        """(action probabilities, info) for each memory map of a batch.

        `visits` counts how often each map was already seen this episode. LLM plans can cycle (drop a
        key, pick the same key up again, forever); from the LOOP_LIMIT-th visit of the same state the
        suggestion is loosened (see `_break_loop`), which breaks the cycle. `keys` (the maps'
        `tobytes()`) and `states` (the agent's (position, heading) on each map) are for callers that
        already have them.
        """
        keys = [memory_map.tobytes() for memory_map in memory_maps] if keys is None else keys
        # A state seen before (same map, so same text and plans) costs one dict lookup: most steps.
        suggestions = [self.suggestion_memo.get(key) for key in keys]
        missing = [i for i, suggestion in enumerate(suggestions) if suggestion is None]
        hits = [True] * len(keys)
        if missing:
            self._suggest_new(memory_maps, keys, missing, suggestions, hits, states)
        else:
            self.stats.cache_hits += len(keys)
        if self.unknown:  # a text the planner did not know is never a cache hit, however often it recurs
            for i, suggestion in enumerate(suggestions):
                if hits[i] and suggestion.text in self.unknown:
                    hits[i] = False
                    self.stats.cache_hits -= 1
        results = []
        stats = self.stats
        for i, (suggestion, memory_map) in enumerate(zip(suggestions, memory_maps)):
            info = {"text": suggestion.text, "plan": suggestion.plan, "option": suggestion.option,
                    "cache_hit": hits[i]}
            if suggestion.fallbacks or suggestion.unresolved:
                stats.fallbacks += suggestion.fallbacks
                stats.unresolved_targets += suggestion.unresolved
            probs = suggestion.probs
            if visits is not None and visits[i] >= LOOP_LIMIT:
                probs = self._loosened(suggestion, memory_map)
                info["loop_break"] = True
                self.stats.loop_breaks += 1
            results.append((probs.copy(), info))
        self.stats.steps += len(keys)
        return results

    def act_one(self, memory_map: np.ndarray, visits: int, key: bytes, state=None) -> tuple[np.ndarray, dict]:
        """`act` for one map whose `tobytes()` is `key`: the single-env wrapper's per-step call."""
        suggestion = self.suggestion_memo.get(key)
        if suggestion is None:
            suggestion, hit = self._suggest_one(memory_map, key, state)
        else:  # a text the planner did not know is never a cache hit, however often it recurs
            hit = not self.unknown or suggestion.text not in self.unknown
            self.stats.cache_hits += hit
        self.stats.steps += 1
        if suggestion.fallbacks or suggestion.unresolved:
            self.stats.fallbacks += suggestion.fallbacks
            self.stats.unresolved_targets += suggestion.unresolved
        info = {"text": suggestion.text, "plan": suggestion.plan, "option": suggestion.option, "cache_hit": hit}
        if visits < LOOP_LIMIT:
            return suggestion.probs.copy(), info
        info["loop_break"] = True
        self.stats.loop_breaks += 1
        return self._loosened(suggestion, memory_map).copy(), info

    def _suggest_one(self, memory_map: np.ndarray, key: bytes, state=None) -> tuple[Suggestion, bool]:
        """The suggestion for a map not seen before (`_suggest_new` for one map, with less bookkeeping)."""
        state = agent_state(memory_map) if state is None else state
        cells_key = cells_key_of(memory_map, state[0], key)
        description = self._described(memory_map, cells_key, state[0])
        [(plans, hit)] = self.plans_for([description.text])
        return self._new_suggestion(memory_map, key, cells_key, state, description, plans), hit

    def _suggest_new(self, memory_maps, keys, missing: list[int], suggestions: list, hits: list[bool],
                     states=None) -> None:
        """Fill in the suggestions of maps not seen before, with one planner call for their new texts."""
        states = [agent_state(memory_maps[i]) if states is None else states[i] for i in missing]
        cell_keys = [cells_key_of(memory_maps[i], agent, keys[i]) for i, (agent, _) in zip(missing, states)]
        descriptions = [self._described(memory_maps[i], key, agent)
                        for i, key, (agent, _) in zip(missing, cell_keys, states)]
        answers = self.plans_for([d.text for d in descriptions])
        self.stats.cache_hits += len(keys) - len(missing)  # plans_for counted the others
        for i, state, cells_key, description, (plans, hit) in zip(missing, states, cell_keys, descriptions,
                                                                  answers):
            hits[i] = hit
            suggestion = self.suggestion_memo.get(keys[i])  # a duplicate earlier in the batch
            if suggestion is None:
                suggestion = self._new_suggestion(memory_maps[i], keys[i], cells_key, state, description, plans)
            suggestions[i] = suggestion

    def _new_suggestion(self, memory_map, key: bytes, cells_key, state, description: Description,
                        plans: PlanDistribution) -> Suggestion:
        view = MapView(memory_map, self.field_cache, cells_key, state)
        tally = [0, 0]  # unresolved targets, fallbacks
        probs, plan, option = self._soft_action(view, description, plans, tally)
        suggestion = Suggestion(probs, plan, option, description.text, (cells_key, state), *tally)
        self._bound(self.suggestion_memo)[key] = suggestion
        return suggestion

    def _loosened(self, suggestion: Suggestion, memory_map: np.ndarray) -> np.ndarray:
        if suggestion.loosened is None:  # computed on the first loop break in this state
            view = MapView(memory_map, self.field_cache, *suggestion.view)
            suggestion.loosened = self._break_loop(suggestion.probs, view)
        return suggestion.loosened

    def _break_loop(self, probs: np.ndarray, view: MapView) -> np.ndarray:
        """Half the suggestion, half a uniform choice among its actions and an exploring one.

        Flattening gives the LLM's less likely plans (often the right ones) a fair chance; exploring
        reveals new facts. Where nothing is left unseen, exploring means turning on the spot.
        """
        values = probs.tolist()  # seven Python floats: cheaper than NumPy's calls
        candidates = [value > 0 for value in values]
        action = explore(view, frozenset())
        for extra in ((LEFT, RIGHT) if action is None else (action,)):
            candidates[extra] = True
        share = 0.5 / sum(candidates)
        return np.array([0.5 * value + (share if candidate else 0.0) for value, candidate in zip(values, candidates)],
                        dtype=np.float32)

    def _described(self, memory_map: np.ndarray, cells_key, agent) -> Description:
        # Walking or turning keeps the cells: a memo hit. Seeing new floor or walls keeps what
        # `describe` reads (its description_key): a second memo's hit.
        description = self.description_memo.get(cells_key)
        if description is None:
            key = description_key(memory_map, agent)
            description = self.text_memo.get(key)
            if description is None:
                description = self._bound(self.text_memo)[key] = describe(memory_map, self.text_style)
            self._bound(self.description_memo)[cells_key] = description
        return description

    @staticmethod
    def _bound(memo: dict, limit: int = 50_000) -> dict:
        """Keep memos from growing without bound over long runs."""
        if len(memo) >= limit:
            memo.clear()
        return memo

    def _soft_action(self, view: MapView, description: Description, plans: PlanDistribution, tally: list[int]):
        probs = [0.0] * N_ACTIONS  # Python floats: a handful of additions, cheaper than NumPy's
        memo: dict[Option, int | None] = {}
        top_plan, top_option, top_prob = "", "", -1.0
        for plan, prob, steps in self._program(description, plans):
            option, action = self._first_action(view, steps, memo, tally)
            probs[action] += prob
            if prob > top_prob:
                top_plan, top_option, top_prob = plan, str(option), prob
        if not plans:
            option, action = self._first_action(view, (), memo, tally)
            probs[action], top_option = 1.0, str(option)
        total = sum(probs)
        return np.array([p / total for p in probs], dtype=np.float32), top_plan, top_option

    def _program(self, description: Description, plans: PlanDistribution) -> list[tuple[str, float, tuple]]:
        """The plans as (plan, probability, steps), each step (option, skill, targets or None where the
        target is not on the map): parsed and resolved once per description and answer."""
        key = (id(description), id(plans))
        program = self.program_memo.get(key)
        if program is None or program[0] is not description or program[1] is not plans:
            objects = description.objects
            steps = [(plan, prob, tuple((option, SKILL_FUNCTIONS[option.skill],
                                         frozenset() if option.target is None else
                                         frozenset(objects[option.target]) if option.target in objects else None)
                                        for option in parse_plan(plan).options))
                     for plan, prob in plans]
            program = self._bound(self.program_memo, 5_000)[key] = (description, plans, steps)
        return program[2]

    def _first_action(self, view: MapView, steps, memo, tally: list[int]) -> tuple[Option, int]:
        """The first option of a plan with something to do, and its action; `tally` counts the options
        whose target is not on the map and the plans with nothing left to do."""
        for option, skill, targets in steps:
            if option not in memo:
                if targets is None:
                    tally[0] += 1
                    memo[option] = None
                else:
                    memo[option] = skill(view, targets)
            if memo[option] is not None:
                return option, memo[option]
        tally[1] += 1
        if EXPLORE not in memo:
            memo[EXPLORE] = SKILL_FUNCTIONS[EXPLORE.skill](view, frozenset())
        return EXPLORE, self.idle_action if memo[EXPLORE] is None else memo[EXPLORE]

    def summary(self) -> dict:
        """Counters plus derived rates, for logs and benchmark reports."""
        return {**self.stats.summary(), "planner": self.planner.name}

    def state_dict(self) -> dict:
        """Everything later suggestions and counters depend on, as plain picklable data (to checkpoint a
        run): the counters, the planner's answers, the texts it did not know and the planner's own state.

        The other memos are caches of pure functions of the map and the answers: they are rebuilt.
        """
        return {"text_style": self.text_style, "stats": asdict(self.stats),
                "memo": {text: [tuple(pair) for pair in answer] for text, answer in self.memo.items()},
                "unknown": sorted(self.unknown), "planner": self.planner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`: this teacher then suggests and counts as the saved one would."""
        if not isinstance(state, dict) or not {"stats", "memo", "unknown", "planner"} <= set(state):
            raise ValueError("not a teacher state: expected the dict of Teacher.state_dict()")
        if state.get("text_style") != self.text_style:
            raise ValueError(f"the teacher state is of text style {state.get('text_style')!r}, this teacher's "
                             f"is {self.text_style!r}: its answers are for other texts")
        self.stats = TeacherStats.of(state["stats"])
        self.memo = {text: [tuple(pair) for pair in answer] for text, answer in state["memo"].items()}
        self.unknown = set(state["unknown"])
        self.planner.load_state_dict(state["planner"])
        self.suggestion_memo.clear()  # suggestions were worked out from the answers replaced here
        self.program_memo.clear()
