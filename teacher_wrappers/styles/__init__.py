"""Text styles: how a memory map (and the mission) becomes the planner's text, which plans are
admissible, how plan steps parse into options, which skills carry them out and what an LLM is asked.

- the paper's `llm4teach-v1` (`paper.py`) in its variants "plain", "colored" (colours canonicalised
  to color1, color2, ...) and "numbered_doors" (door1, door2): the recorded LLM answers are for it;
- the suite's `tw-suite-v1` (`suite.py`), named "suite": every MiniGrid object and the mission.

`text_style=` takes one of these names or a TextStyle object of your own (see docs/styles.md).
"""

from __future__ import annotations

from teacher_wrappers.styles.base import Description, TextStyle
from teacher_wrappers.styles.paper import PaperStyle
from teacher_wrappers.styles.suite import SuiteStyle

STYLES: dict[str, TextStyle] = {variant: PaperStyle(variant) for variant in PaperStyle.VARIANTS}
STYLES["suite"] = SuiteStyle()
_ALIASES = {PaperStyle.format_version: "plain", SuiteStyle.format_version: "suite"}


def get_style(style: str | TextStyle) -> TextStyle:
    """A style by name ("plain", "colored", "numbered_doors", "suite", or a format name such as
    "tw-suite-v1"); a TextStyle object is returned as it is."""
    if isinstance(style, TextStyle):
        return style
    found = STYLES.get(_ALIASES.get(style, style)) if isinstance(style, str) else None
    if found is None:
        raise ValueError(f"unknown text style {style!r}; valid: {', '.join(STYLES)}, or a TextStyle object")
    return found


__all__ = ["STYLES", "Description", "PaperStyle", "SuiteStyle", "TextStyle", "get_style"]
