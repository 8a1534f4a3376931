"""Planners: description texts in, plan distributions out. Build one with `make_planner`."""

from __future__ import annotations

from teacher_wrappers.planners.base import PlanDistribution, Planner
from teacher_wrappers.planners.recorded import RecordedPlanner, RecordedTableError
from teacher_wrappers.planners.rules import RulesPlanner

PLANNERS: dict[str, type[Planner]] = {"recorded": RecordedPlanner, "rules": RulesPlanner}


def make_planner(name: str, **kwargs) -> Planner:
    """Build a planner by name; `task` (a recorded table name) is accepted by every planner."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; valid planners: {', '.join(sorted(PLANNERS))}")
    return PLANNERS[name](**kwargs)


__all__ = ["PLANNERS", "PlanDistribution", "Planner", "RecordedPlanner", "RecordedTableError", "RulesPlanner",
           "make_planner"]
