"""The planner interface shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from teacher_wrappers.styles import TextStyle

PlanDistribution = list[tuple[str, float]]  # (plan text, probability), probabilities summing to 1
BILL = ("llm_calls", "llm_requests", "llm_prompt_tokens", "llm_completion_tokens", "llm_seconds")


class Planner:
    """Maps a batch of descriptions to a plan distribution for each.

    Subclasses implement `plan`; the teacher passes its text style, which knows the texts' grammar,
    the admissible plans, the rules and the LLM prompt (a planner asked without one takes the paper's). `queries` counts texts the backend actually had to answer.
    `is_llm` tells reports and logs whether a language model stands behind the answers; `live` whether
    answering runs a model or calls a server (a miss of the teacher's caches costs time and money).
    """

    name = "planner"
    is_llm = False
    live = False

    def __init__(self) -> None:
        self.queries = 0
        self.last_misses: set[str] = set()  # texts of the last `plan` call that needed a live answer
        self.last_unknown: set[str] = set()  # texts of the last `plan` call the planner had no answer for

    def plan(self, texts: Sequence[str], style: TextStyle | str = "plain") -> list[PlanDistribution]:
        raise NotImplementedError

    def bill(self) -> dict:
        """What the LLM behind this planner was asked, whichever teacher asked: texts answered live, requests
        (HTTP requests, or model forward passes / generate calls), prompt and completion tokens (where the
        backend reports them) and seconds waiting for it. All 0 for planners without a live LLM."""
        return dict.fromkeys(BILL, 0) | {"llm_seconds": 0.0}

    def state_dict(self) -> dict:
        """Counters and whatever else changes later answers, as plain data (part of the teacher's state).
        Subclasses with more state extend both methods."""
        return {"queries": self.queries}

    def load_state_dict(self, state: dict) -> None:
        self.queries = state["queries"]

    def close(self) -> None:
        """Release servers, files or models; the default holds nothing."""


def normalise(distribution: dict[str, float]) -> PlanDistribution:
    """Merge duplicate plans and rescale probabilities to sum to 1 (empty stays empty)."""
    total = sum(distribution.values())
    if total <= 0:
        return []
    return [(plan, prob / total) for plan, prob in distribution.items()]
