"""The prompt shown to LLM planners: kept in one place, with a version.

Cached answers are keyed by PROMPT_VERSION (and the description format), so a change here must bump
the version: answers recorded for one prompt are not valid for another.
"""

from __future__ import annotations

import re

from teacher_wrappers.describe import FORMAT_VERSION
from teacher_wrappers.describe_suite import SUITE_FORMAT_VERSION, is_suite_text

PROMPT_VERSION = f"tw-prompt-1/{FORMAT_VERSION}"
SUITE_PROMPT_VERSION = f"tw-prompt-suite-1/{SUITE_FORMAT_VERSION}"

SYSTEM = (
    "You plan for an agent in a grid world. Its task is to open a locked door. A locked door opens "
    "only for an agent holding the key of the door's colour, and the agent can hold one object at a "
    "time. Each turn you are told what the agent has seen and what it holds. The agent can do these "
    "steps: explore, go to <object>, pick up <object>, drop <object>, open <object>. Name objects "
    "exactly as in the description, with their angle brackets. Answer with one line that starts with "
    "'Plan:' followed by the steps, separated by commas."
)

EXAMPLE = ("Agent sees <key>, <door>, holds <nothing>.", "Plan: go to <key>, pick up <key>, go to <door>, open <door>")


SUITE_SYSTEM = (
    "You plan for an agent in a grid world. Each turn you are told its mission, every object it has "
    "seen (keys, balls, boxes, doors that are locked, closed or open, the goal, lava) and what it holds. "
    "A locked door opens only for an agent holding the key of the door's colour; a box may hold a key; "
    "the agent holds one object at a time; an object 'in the way' stands in front of a door. The agent "
    "can do these steps: explore, go to <object>, pick up <object>, drop <object>, open <object>, "
    "put <object> near <object>, done (stop, when the mission is to go somewhere). Name objects exactly "
    "as in the description, with their angle brackets. You are given the admissible plans; answer with "
    "one line that starts with 'Plan:' followed by the steps, separated by commas."
)

SUITE_EXAMPLE = (
    "Mission: pick up the red box. Agent sees <yellow key>, <locked yellow door>, holds <nothing>.",
    "Plan: go to <yellow key>, pick up <yellow key>, go to <locked yellow door>, open <locked yellow door>",
)


def prompt_version(description: str) -> str:
    """The prompt version a description is asked with (part of every cache key)."""
    return SUITE_PROMPT_VERSION if is_suite_text(description) else PROMPT_VERSION


def _suite_user(description: str) -> str:
    from teacher_wrappers.plans import admissible_plans  # plans imports the planners, which import this

    options = "\n".join(f"- {plan}" for plan in admissible_plans(description))
    return f"{description}\nAdmissible plans:\n{options}"


def chat_messages(description: str) -> list[dict[str, str]]:
    """System instructions, one worked example, then the description to plan for.

    Suite descriptions (with a mission) get the suite's instructions and their admissible plans.
    """
    if is_suite_text(description):
        system, example, user = SUITE_SYSTEM, (_suite_user(SUITE_EXAMPLE[0]), SUITE_EXAMPLE[1]), _suite_user(description)
    else:
        system, example, user = SYSTEM, EXAMPLE, description
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": example[0]},
        {"role": "assistant", "content": example[1]},
        {"role": "user", "content": user},
    ]


def completion_prompt(description: str) -> str:
    """The same prompt as plain text, for servers scored through the completions endpoint."""
    messages = chat_messages(description)
    system, example_user, example_answer, user = (m["content"] for m in messages)
    return f"{system}\n\n{example_user}\n{example_answer}\n\n{user}\nPlan:"


_PLAN_LINE = re.compile(r"plan\s*:\s*(.+)", re.IGNORECASE)


def extract_plan(answer: str) -> str:
    """The plan in an LLM answer: the text after 'Plan:', else the first non-empty line."""
    match = _PLAN_LINE.search(answer)
    line = match.group(1) if match else next((ln for ln in answer.splitlines() if ln.strip()), "")
    return line.splitlines()[0].strip().strip("\"'`{}[]").strip() if line else ""
