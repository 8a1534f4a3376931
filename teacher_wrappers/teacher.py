"""Teacher: planner + text style -> a distribution over the agent's actions.

Every step the memory map is described in text (by the text style), the planner answers a
distribution over plans (memoised per text, so a recurring text costs one query), and each plan is
pushed through the style's skills: its first option that still has something to do picks the plan's
action. The teacher's action distribution is the plans' probabilities summed per action (the
reference's soft teacher). LLM plans can cycle: from the LOOP_LIMIT-th visit of the same state in an
episode the suggestion is loosened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from teacher_wrappers.memory import agent_state
from teacher_wrappers.mission import Mission
from teacher_wrappers.planners import Planner, make_planner
from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.plans import Option
from teacher_wrappers.skills import LEFT, RIGHT, MapView, cells_key_of
from teacher_wrappers.styles import Description, TextStyle, get_style

N_ACTIONS = 7  # MiniGrid's action set
EXPLORE = Option("explore")
LOOP_LIMIT = 4
NO_MISSION = Mission(())
_NONE: frozenset = frozenset()
_UNKNOWN = object()  # not worked out yet


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
    view: tuple  # (cells key, agent state, description, mission): to rebuild the map's view for a loop break
    unresolved: int = 0  # options naming an object not on the map, counted at every step in this state
    fallbacks: int = 0  # plans with nothing left to do, counted at every step in this state
    loosened: np.ndarray | None = None  # the probabilities used in a loop, computed when first needed
    explored: object = _UNKNOWN  # the map view's `explore()`, if working out the suggestion needed it (else _UNKNOWN)


class Teacher:
    """Turns memory maps (and missions) into action distributions with a planner and a text style.

    `text_style` is a style name ("plain", "colored", "numbered_doors", "suite") or a TextStyle object;
    `planner` a planner name (built with `planner_kwargs`) or a Planner.
    """

    def __init__(self, planner: Planner | str = "recorded", text_style: TextStyle | str = "plain", **planner_kwargs):
        self.style = get_style(text_style)
        self._uses_mission = self.style.uses_mission
        self.planner = make_planner(planner, **planner_kwargs) if isinstance(planner, str) else planner
        # The action when no plan has anything left to do and nothing unseen is in reach: the style's
        # (the paper's `done`, a no-op on its tasks); wrappers set LEFT (turn, look around) on other envs,
        # where `done` can end the episode at reward 0.
        self.idle_action = self.style.idle_action
        self.memo: dict[str, PlanDistribution] = {}
        self.unknown: set[str] = set()  # memoised texts whose answer came from no table or model
        self.field_cache: dict = {}  # distance fields shared by the skills across steps
        self.description_memo: dict = {}  # by cells key (and mission, for styles that use it)
        self.text_memo: dict = {}  # by the style's description_key
        # Suggestions by memory map (its tobytes(), and the mission for styles that use it): a pure
        # function of the map, since a text's plans never change once memoised.
        self.suggestion_memo: dict = {}
        self.program_memo: dict[tuple[int, int], tuple] = {}  # see _program
        self.parsed_memo: dict[int, tuple] = {}  # see _parsed
        self.array_memo: dict[tuple[float, ...], np.ndarray] = {}  # see _array
        self.stats = TeacherStats()

    @property
    def text_style(self) -> str:
        return self.style.name

    def act(self, memory_maps: Sequence[np.ndarray], visits: Sequence[int] | None = None,
            keys: Sequence[bytes] | None = None, states: Sequence | None = None,
            missions: Sequence[Mission] | None = None) -> list[tuple[np.ndarray, dict]]:
        """(action probabilities, info) for each memory map of a batch, with one planner call for the
        batch's new texts.

        `visits` counts how often each map was already seen this episode (from LOOP_LIMIT on, the
        suggestion is loosened, see `_break_loop`); `missions` are the maps' missions (styles that use
        them; default: none). `keys` (the maps' `tobytes()`) and `states` (the agent's (position,
        heading) on each map) are for callers that already have them.
        """
        keys = [memory_map.tobytes() for memory_map in memory_maps] if keys is None else keys
        if self._uses_mission:
            missions = [NO_MISSION] * len(keys) if missions is None else missions
            memo_keys = list(zip(keys, missions))
        else:
            memo_keys = keys
        # A state seen before (same map, so same text and plans) costs one dict lookup: most steps.
        suggestions = [self.suggestion_memo.get(key) for key in memo_keys]
        missing = [i for i, suggestion in enumerate(suggestions) if suggestion is None]
        live = self._suggest_new(memory_maps, keys, memo_keys, missing, suggestions, states, missions) \
            if missing else _NONE
        return [self._respond(suggestion, memory_map, None if visits is None else visits[i], live)
                for i, (suggestion, memory_map) in enumerate(zip(suggestions, memory_maps))]

    def act_one(self, memory_map: np.ndarray, visits: int, key: bytes, state=None,
                mission: Mission | None = None) -> tuple[np.ndarray, dict]:
        """`act` for one map whose `tobytes()` is `key`: the single-env wrapper's per-step call."""
        memo_key = (key, mission or NO_MISSION) if self._uses_mission else key
        suggestion = self.suggestion_memo.get(memo_key)
        if suggestion is not None:  # most steps
            return self._respond(suggestion, memory_map, visits, _NONE)
        mission = mission or NO_MISSION
        cells, state, description = self._situation(memory_map, key, state, mission)
        live = _NONE if description.text in self.memo else self._ask((description.text,))
        suggestion = self._new_suggestion(memory_map, memo_key, cells, state, description, self.memo[description.text],
                                          mission)
        return self._respond(suggestion, memory_map, visits, live)

    def _respond(self, suggestion: Suggestion, memory_map: np.ndarray, visits: int | None,
                 live: frozenset) -> tuple[np.ndarray, dict]:
        """A step's answer and its counters: every step passes here."""
        stats = self.stats
        stats.steps += 1
        text = suggestion.text
        # A cache hit needed no live LLM call now, and the planner knew the text: one it did not know
        # is never a hit, however often it recurs.
        hit = not ((self.unknown and text in self.unknown) or (live and text in live))
        stats.cache_hits += hit
        if suggestion.fallbacks or suggestion.unresolved:
            stats.fallbacks += suggestion.fallbacks
            stats.unresolved_targets += suggestion.unresolved
        info = {"text": text, "plan": suggestion.plan, "option": suggestion.option, "cache_hit": hit}
        if visits is None or visits < LOOP_LIMIT:
            return suggestion.probs.copy(), info
        info["loop_break"] = True
        stats.loop_breaks += 1
        return self._loosened(suggestion, memory_map).copy(), info

    def _suggest_new(self, memory_maps, keys, memo_keys, missing: list[int], suggestions: list, states=None,
                     missions=None) -> frozenset:
        """Fill in the suggestions of maps not seen before, with one planner call for their new texts;
        returns the texts a live LLM had to answer."""
        news = []
        for i in missing:
            mission = NO_MISSION if missions is None else missions[i]
            news.append((i, mission, *self._situation(memory_maps[i], keys[i], None if states is None else states[i],
                                                      mission)))
        live = self._ask([description.text for *_, description in news])
        for i, mission, cells, state, description in news:
            suggestion = self.suggestion_memo.get(memo_keys[i])  # a duplicate earlier in the batch
            if suggestion is None:
                suggestion = self._new_suggestion(memory_maps[i], memo_keys[i], cells, state, description,
                                                  self.memo[description.text], mission)
            suggestions[i] = suggestion
        return live

    def _situation(self, memory_map: np.ndarray, key: bytes, state, mission: Mission) -> tuple:
        """(cells key, agent state, description) of a map not seen before: what its suggestion depends on."""
        state = agent_state(memory_map, key) if state is None else state
        cells = cells_key_of(memory_map, state[0], key)
        if self._uses_mission:
            cells = (cells, mission)
        return cells, state, self._described(memory_map, cells, state[0], mission)

    def _ask(self, texts: Sequence[str]) -> frozenset:
        """Ask the planner, in one call, for the texts not in the memo; returns those a live LLM answered."""
        memo = self.memo
        missing = sorted({text for text in texts if text not in memo})
        if not missing:
            return _NONE
        stats = self.stats
        start = time.perf_counter()
        answers = self.planner.plan(missing, self.style)
        stats.planner_seconds += time.perf_counter() - start
        for text, answer in zip(missing, answers):
            memo[text] = answer
            stats.unparsed_steps += sum(self.style.parse_plan(plan).unknown_steps for plan, _ in answer)
        stats.queries += len(missing)
        unknown = getattr(self.planner, "last_unknown", set()) & set(missing)
        self.unknown.update(unknown)
        stats.unknown_texts += len(unknown)
        live = frozenset(self.planner.last_misses & set(missing))
        stats.llm_calls += len(live)
        return live

    def _new_suggestion(self, memory_map, memo_key, cells, state, description: Description,
                        plans: PlanDistribution, mission: Mission) -> Suggestion:
        view = self.style.map_view(memory_map, self.field_cache, cells, state, description, mission)
        tally = [0, 0]  # unresolved targets, fallbacks
        memo: dict[Option, int | None] = {}  # each option's action on this view
        probs, plan, option = self._soft_action(view, description, plans, tally, memo)
        suggestion = Suggestion(probs, plan, option, description.text, (cells, state, description, mission), *tally,
                                explored=memo.get(EXPLORE, _UNKNOWN))
        self._bound(self.suggestion_memo)[memo_key] = suggestion
        return suggestion

    def _loosened(self, suggestion: Suggestion, memory_map: np.ndarray) -> np.ndarray:
        if suggestion.loosened is None:  # computed on the first loop break in this state
            explored = suggestion.explored
            if explored is _UNKNOWN:
                explored = self.style.map_view(memory_map, self.field_cache, *suggestion.view).explore()
            suggestion.loosened = self._break_loop(suggestion.probs, explored)
        return suggestion.loosened

    def _break_loop(self, probs: np.ndarray, action: int | None) -> np.ndarray:
        """Half the suggestion, half a uniform choice among its actions and an exploring one.

        Flattening gives the LLM's less likely plans (often the right ones) a fair chance; exploring
        reveals new facts. Where nothing is left unseen, exploring means turning on the spot.
        """
        values = probs.tolist()  # seven Python floats: cheaper than NumPy's calls
        candidates = [value > 0 for value in values]
        for extra in ((LEFT, RIGHT) if action is None else (action,)):
            candidates[extra] = True
        share = 0.5 / sum(candidates)
        return self._array(tuple([0.5 * value + (share if candidate else 0.0)
                                  for value, candidate in zip(values, candidates)]))

    def _array(self, values: tuple[float, ...]) -> np.ndarray:
        """`values` as a read-only float32 array, shared by all suggestions with these probabilities (few
        distinct ones recur: building a small array costs more than looking it up); callers get copies."""
        array = self.array_memo.get(values)
        if array is None:
            array = self._bound(self.array_memo, 10_000)[values] = np.array(values, dtype=np.float32)
            array.flags.writeable = False
        return array

    def _described(self, memory_map: np.ndarray, cells, agent, mission: Mission) -> Description:
        # Walking or turning keeps the cells: a memo hit. Seeing new floor or walls keeps what the
        # style's `describe` reads (its description_key, where it has one): a second memo's hit.
        description = self.description_memo.get(cells)
        if description is None:
            key = self.style.description_key(memory_map, agent, mission)
            description = None if key is None else self.text_memo.get(key)
            if description is None:
                description = self.style.describe(memory_map, mission)
                if key is not None:
                    self._bound(self.text_memo)[key] = description
            self._bound(self.description_memo)[cells] = description
        return description

    @staticmethod
    def _bound(memo: dict, limit: int = 50_000) -> dict:
        """Keep memos from growing without bound over long runs."""
        if len(memo) >= limit:
            memo.clear()
        return memo

    def _soft_action(self, view: MapView, description: Description, plans: PlanDistribution, tally: list[int],
                     memo: dict):
        probs = [0.0] * N_ACTIONS  # Python floats: a handful of additions, cheaper than NumPy's
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
        return self._array(tuple([p / total for p in probs])), top_plan, top_option

    def _program(self, description: Description, plans: PlanDistribution) -> list[tuple[str, float, tuple]]:
        """The plans as (plan, probability, steps), each step (option, skill, target cells: one set per
        object the option names, or None where one is not on the map): parsed and resolved once per
        description and answer."""
        key = (id(description), id(plans))
        program = self.program_memo.get(key)
        if program is None or program[0] is not description or program[1] is not plans:
            objects, cells = description.objects, {}  # each option's cells, worked out once per description
            steps = [(plan, prob, tuple([(option, skill, _cells(option, objects, cells)) for option, skill in parsed]))
                     for plan, prob, parsed in self._parsed(plans)]
            program = self._bound(self.program_memo, 5_000)[key] = (description, plans, steps)
        return program[2]

    def _parsed(self, plans: PlanDistribution) -> list[tuple[str, float, tuple]]:
        """The plans as (plan, probability, ((option, skill), ...)): parsed once per answer, whatever the map."""
        key = id(plans)
        parsed = self.parsed_memo.get(key)
        if parsed is None or parsed[0] is not plans:
            skills = self.style.skills
            parsed = self._bound(self.parsed_memo, 5_000)[key] = (plans, [
                (plan, prob, tuple([(option, skills[option.skill]) for option in self.style.parse_plan(plan).options]))
                for plan, prob in plans])
        return parsed[1]

    def _first_action(self, view: MapView, steps, memo, tally: list[int]) -> tuple[Option, int]:
        """The first option of a plan with something to do, and its action; `tally` counts the options
        whose target is not on the map and the plans with nothing left to do."""
        for option, skill, targets in steps:
            if option not in memo:
                if targets is None:
                    tally[0] += 1
                    memo[option] = None
                else:
                    memo[option] = skill(view, *targets)
            if memo[option] is not None:
                return option, memo[option]
        tally[1] += 1
        if EXPLORE not in memo:
            memo[EXPLORE] = view.explore()
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
        self.parsed_memo.clear()


def teacher_actions(rng: np.random.Generator):
    """`choose_actions` for `training.play_episodes` that lets the teacher act alone: for a batch of observations
    with `teacher_probs`, one action per row sampled from them (with `rng`)."""
    def choose_actions(obs: dict) -> np.ndarray:
        cumulative = np.cumsum(obs["teacher_probs"], axis=1)
        draws = rng.random(len(cumulative))[:, None] * cumulative[:, -1:]
        return np.minimum((cumulative <= draws).sum(1), cumulative.shape[1] - 1)

    return choose_actions


_NO_TARGET = (frozenset(),)


def _cells(option: Option, objects: dict[str, list[tuple[int, int]]], memo: dict) -> tuple[frozenset, ...] | None:
    """The cells of each object an option names (one empty set for an option without one), or None if
    one is not on the map; `memo` keeps them by option for one `objects`."""
    cells = memo.get(option, _UNKNOWN)
    if cells is _UNKNOWN:
        names = option.targets
        if not names:
            cells = _NO_TARGET
        elif any(name not in objects for name in names):
            cells = None
        else:
            cells = tuple([frozenset(objects[name]) for name in names])
        memo[option] = cells
    return cells
