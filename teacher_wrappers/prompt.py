"""The prompt shown to LLM planners: kept in one place, with a version.

Cached answers are keyed by PROMPT_VERSION (and the description format), so a change here must bump
the version: answers recorded for one prompt are not valid for another.
"""

from __future__ import annotations

import re

from teacher_wrappers.describe import FORMAT_VERSION

PROMPT_VERSION = f"tw-prompt-1/{FORMAT_VERSION}"

SYSTEM = (
    "You plan for an agent in a grid world. Its task is to open a locked door. A locked door opens "
    "only for an agent holding the key of the door's colour, and the agent can hold one object at a "
    "time. Each turn you are told what the agent has seen and what it holds. The agent can do these "
    "steps: explore, go to <object>, pick up <object>, drop <object>, open <object>. Name objects "
    "exactly as in the description, with their angle brackets. Answer with one line that starts with "
    "'Plan:' followed by the steps, separated by commas."
)

EXAMPLE = ("Agent sees <key>, <door>, holds <nothing>.", "Plan: go to <key>, pick up <key>, go to <door>, open <door>")


def chat_messages(description: str) -> list[dict[str, str]]:
    """System instructions, one worked example, then the description to plan for."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": EXAMPLE[0]},
        {"role": "assistant", "content": EXAMPLE[1]},
        {"role": "user", "content": description},
    ]


def completion_prompt(description: str) -> str:
    """The same prompt as plain text, for servers scored through the completions endpoint."""
    return f"{SYSTEM}\n\n{EXAMPLE[0]}\n{EXAMPLE[1]}\n\n{description}\nPlan:"


_PLAN_LINE = re.compile(r"plan\s*:\s*(.+)", re.IGNORECASE)


def extract_plan(answer: str) -> str:
    """The plan in an LLM answer: the text after 'Plan:', else the first non-empty line."""
    match = _PLAN_LINE.search(answer)
    line = match.group(1) if match else next((ln for ln in answer.splitlines() if ln.strip()), "")
    return line.splitlines()[0].strip().strip("\"'`{}[]").strip() if line else ""
