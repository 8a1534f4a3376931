"""Score mode, defined once for every backend.

A plan's score is the sum of the log-probabilities of its tokens and of the end-of-answer token,
given the chat-templated prompt: the conversation of `teacher_wrappers.prompt.chat_messages` followed
by the assistant's answer `Plan: <plan>`, rendered by the model's chat template. The scored tokens are
those of ` <plan>` (after `Plan:`) and the first token the template writes after the answer (its
end-of-turn token, SmolLM2's `<|im_end|>`), which tells "the answer is this plan" from "the answer starts
with it". The plan distribution is the softmax of the scores over the text style's admissible plans.

A backend gives, for the rendered conversation, each token's text and log-probability (a local model
computes them, a server echoes them); `scored_indices` finds the scored tokens in it, `plan_logprob`
sums them (a missing value or a token across the plan's edge is an error, never skipped), `softmax`
makes the distribution. `echo_shift` checks a server's echoed values against its own values for the
same tokens. Change SCORER_VERSION with this definition: it is part of score mode's cache key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.prompt import chat_messages
from teacher_wrappers.styles import TextStyle

SCORER_VERSION = "tw-score-2"  # 1 (unversioned): no end-of-answer token, and the openai planner scored another prompt
ANSWER_PREFIX = "Plan:"
SHIFTS = (0, -1, 1)  # echo offsets a server may have, tried in this order: true value of token i = echoed[i + shift]


class ScoringError(ValueError):
    """The numbers a backend gave cannot be turned into a score; the message says why in one line."""


def answer(plan: str) -> str:
    """The assistant's answer whose likelihood is the plan's score."""
    return f"{ANSWER_PREFIX} {plan}"


def answered_conversation(text: str, style: TextStyle, plan: str) -> list[dict[str, str]]:
    """The prompt's messages and the answer `plan`: what the chat template renders for scoring."""
    return [*chat_messages(text, style), {"role": "assistant", "content": answer(plan)}]


def spans_of(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of consecutive token texts in their concatenation."""
    spans, start = [], 0
    for piece in pieces:
        spans.append((start, start + len(piece)))
        start += len(piece)
    return spans


def scored_indices(rendered: str, spans: Sequence[tuple[int, int]], plan: str) -> list[int]:
    """Indices of the plan's tokens and the end-of-answer token in a tokenised rendering of the answered
    conversation (`spans`: each token's character span in `rendered`; a special token a server writes as
    empty text has an empty span)."""
    at = rendered.rfind(answer(plan))
    if at < 0:
        raise ScoringError(f"the scored text does not contain the answer {answer(plan)!r} (a chat template that "
                           f"rewrites messages?)")
    start, end = at + len(ANSWER_PREFIX), at + len(answer(plan))
    indices = []
    for index, (left, right) in enumerate(spans):
        for edge, name in ((start, "start"), (end, "end")):
            if left < edge < right:
                raise ScoringError(f"token {rendered[left:right]!r} straddles the {name} of the plan {plan!r}")
        if start <= left and right <= end and right > left:
            indices.append(index)
    if not indices:
        raise ScoringError(f"no token of the plan {plan!r} found in the scored text")
    if indices[-1] + 1 >= len(spans):
        raise ScoringError("the chat template writes no end-of-answer token after the answer")
    return indices + [indices[-1] + 1]


def plan_logprob(values: Sequence[float | None], indices: Sequence[int], shift: int = 0) -> float:
    """Sum of the scored tokens' log-probabilities (value of token i at `values[i + shift]`)."""
    total = 0.0
    for index in indices:
        position = index + shift
        value = values[position] if 0 <= position < len(values) else None
        if value is None or not math.isfinite(value):
            raise ScoringError(f"token {index} of the scored text has no log-probability ({value!r})")
        total += value
    return total


def softmax(plans: Sequence[str], scores: Sequence[float]) -> PlanDistribution:
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    return [(plan, weight / sum(weights)) for plan, weight in zip(plans, weights)]


def echo_shift(echoed: Sequence[float | None], positions: Sequence[int], expected: Sequence[float]) -> int | None:
    """The shift s with echoed[position + s] == the expected value of every probe token (the server's own
    log-probability for it, computed without echo), or None when no shift explains the echo."""
    def fits(shift: int) -> bool:
        for position, value in zip(positions, expected):
            index = position + shift
            got = echoed[index] if 0 <= index < len(echoed) else None
            if got is None or abs(got - value) > 0.05 + 0.02 * abs(value):
                return False
        return True

    matching = [shift for shift in SHIFTS if fits(shift)]
    return matching[0] if len(matching) == 1 else None
