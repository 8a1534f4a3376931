"""What every LLM planner shares: the answer cache, sampling settings and turning answers into plans."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from teacher_wrappers.cache import AnswerCache
from teacher_wrappers.planners.base import PlanDistribution, Planner
from teacher_wrappers.planners.scoring import SCORER_VERSION
from teacher_wrappers.prompt import extract_plan
from teacher_wrappers.styles import TextStyle, get_style

MODES = ("sample", "score")


class PlannerError(RuntimeError):
    """An LLM backend failed to answer; the message names the backend, where it runs and the model."""


def distribution_from_samples(answers: Sequence[str]) -> PlanDistribution:
    """n sampled answers -> the frequency of each extracted plan (the reference's soft teacher)."""
    counts = Counter(extract_plan(answer) for answer in answers)
    return [(plan, count / len(answers)) for plan, count in counts.items()]


class LLMPlanner(Planner):
    """An LLM behind a persistent answer cache. Subclasses implement `_answer` for the cache's misses: each
    answer comes with the settings it was made with (a planner may have to sample where it was asked to
    score), and is cached under them."""

    is_llm = True
    live = True
    backend = "llm"

    def __init__(self, model: str, mode: str = "sample", n: int = 10, temperature: float = 1.0,
                 max_new_tokens: int = 40, seed: int = 0, cache: AnswerCache | str | Path | bool | None = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.model, self.mode, self.n, self.temperature = model, mode, n, temperature
        self.max_new_tokens, self.seed = max_new_tokens, seed
        if cache is False:
            self.cache = None
        else:
            self.cache = cache if isinstance(cache, AnswerCache) else AnswerCache(cache)
        self.cache_hits = 0
        self.live_seconds = 0.0
        self.requests = self.prompt_tokens = self.completion_tokens = 0  # see `bill`
        self._bill_lock = threading.Lock()  # requests may run in threads

    def charge(self, requests: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Count requests (or forward passes) made to the LLM and the tokens they took, as the backend says."""
        with self._bill_lock:
            self.requests += requests
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def bill(self) -> dict:
        return {"llm_calls": self.queries, "llm_requests": self.requests, "llm_prompt_tokens": self.prompt_tokens,
                "llm_completion_tokens": self.completion_tokens, "llm_seconds": self.live_seconds}

    def settings(self) -> dict:
        """Everything besides the prompt that changes the answer (never secrets): the mode's settings."""
        return self.score_settings() if self.mode == "score" else self.sample_settings()

    def score_settings(self) -> dict:
        """Score mode: the scorer's version (teacher_wrappers.planners.scoring) and how the backend computed
        the scores (`score_via`)."""
        return {"mode": "score", "scorer": SCORER_VERSION, "via": self.score_via()}

    def sample_settings(self) -> dict:
        return {"mode": "sample", "n": self.n, "temperature": self.temperature,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed}

    def score_via(self) -> str:
        """Where the scores come from: a local model's forward pass."""
        return "local"

    def state_dict(self) -> dict:
        # not the mode: a planner that had to sample because its server cannot score is asked to score again
        # in a later run (the server may have been fixed), as it was built to
        return {**super().state_dict(), "cache_hits": self.cache_hits,
                "live_seconds": self.live_seconds, "requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)  # an older state's "mode" is ignored (see state_dict)
        self.cache_hits, self.live_seconds = state["cache_hits"], state["live_seconds"]
        self.requests, self.prompt_tokens = state.get("requests", 0), state.get("prompt_tokens", 0)
        self.completion_tokens = state.get("completion_tokens", 0)

    def plan(self, texts: Sequence[str], style: TextStyle | str = "plain") -> list[PlanDistribution]:
        style = get_style(style)
        answers: dict[str, PlanDistribution] = {}
        for text in texts:
            cached = self.cache.get(self.backend, self.model, style.prompt_version, text,
                                    self.settings()) if self.cache else None
            if cached is not None:
                answers[text] = cached
                self.cache_hits += 1
        misses = [text for text in dict.fromkeys(texts) if text not in answers]
        self.last_misses = set(misses)
        if misses:
            for text, (answer, settings) in zip(misses, self._answer(misses, style)):
                answers[text] = answer
                if self.cache:
                    self.cache.put(self.backend, self.model, style.prompt_version, text, settings, answer)
            self.queries += len(misses)
        return [answers[text] for text in texts]

    def _answer(self, texts: list[str], style: TextStyle) -> list[tuple[PlanDistribution, dict]]:
        """(answer, the settings it was made with) for each text."""
        raise NotImplementedError
