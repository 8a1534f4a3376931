"""A hand-written planner: the ideal-planner reference and the zero-cost baseline. Not an LLM.

The rules are the text style's (`TextStyle.rule_plan`): each style knows what its texts say.
"""

from __future__ import annotations

from collections.abc import Sequence

from teacher_wrappers.planners.base import PlanDistribution, Planner
from teacher_wrappers.styles import TextStyle, get_style


class RulesPlanner(Planner):
    """Deterministic rules over the description: find the key that fits, fetch it, open the door, and
    on the suite's texts carry out any MiniGrid/BabyAI mission."""

    name = "rules"

    def __init__(self, task: str | None = None):
        super().__init__()

    def plan(self, texts: Sequence[str], style: TextStyle | str = "plain") -> list[PlanDistribution]:
        style = get_style(style)
        self.queries += len(texts)
        return [[(style.rule_plan(text), 1.0)] for text in texts]
