"""The prompt shown to LLM planners: the text style's instructions, one worked example, the question.

Cached answers are keyed by the style's `prompt_version` (with the description format), so a change
to a style's prompt must bump it: answers recorded for one prompt are not valid for another.
"""

from __future__ import annotations

import re

from teacher_wrappers.styles import TextStyle, get_style

DEFAULT_STYLE = "plain"  # planners asked without a style get the paper's


def chat_messages(description: str, style: TextStyle | str = DEFAULT_STYLE) -> list[dict[str, str]]:
    """System instructions, one worked example, then the description to plan for (as the style asks it:
    the suite's with its admissible plans)."""
    style = get_style(style)
    example, answer = style.example
    return [
        {"role": "system", "content": style.system_prompt},
        {"role": "user", "content": style.user_prompt(example)},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": style.user_prompt(description)},
    ]


_PLAN_LINE = re.compile(r"plan\s*:\s*(.+)", re.IGNORECASE)


def extract_plan(answer: str) -> str:
    """The plan in an LLM answer: the text after 'Plan:', else the first non-empty line."""
    match = _PLAN_LINE.search(answer)
    line = match.group(1) if match else next((ln for ln in answer.splitlines() if ln.strip()), "")
    return line.splitlines()[0].strip().strip("\"'`{}[]").strip() if line else ""
