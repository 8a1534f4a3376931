"""Planners: description texts in, plan distributions out. Build one with `make_planner`."""

from __future__ import annotations

from teacher_wrappers.planners.base import PlanDistribution, Planner
from teacher_wrappers.planners.recorded import RecordedPlanner, RecordedTableError
from teacher_wrappers.planners.rules import RulesPlanner

PLANNERS = ("hf", "openai", "recorded", "rules")


def planner_class(name: str) -> type[Planner]:
    """The class of a planner name; LLM backends are imported only when asked for (transformers is slow)."""
    if name == "recorded":
        return RecordedPlanner
    if name == "rules":
        return RulesPlanner
    if name == "hf":
        from teacher_wrappers.planners.hf import HFPlanner

        return HFPlanner
    if name == "openai":
        from teacher_wrappers.planners.openai import OpenAIPlanner

        return OpenAIPlanner
    raise ValueError(f"unknown planner {name!r}; valid planners: {', '.join(PLANNERS)}")


def __getattr__(name: str):
    """`teacher_wrappers.planners.HFPlanner` / `.OpenAIPlanner`, imported on first use."""
    if name in ("HFPlanner", "OpenAIPlanner"):
        return planner_class("hf" if name == "HFPlanner" else "openai")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_planner(name: str, **kwargs) -> Planner:
    """Build a planner by name; `task` (a recorded table name) is accepted by every planner. A `fallback`
    planner named by a string (the recorded planner's, for texts its table lacks) is built here, for the same task."""
    if isinstance(kwargs.get("fallback"), str):
        kwargs["fallback"] = make_planner(kwargs["fallback"], task=kwargs.get("task"))
    return planner_class(name)(**kwargs)


def planner_kwargs(args) -> dict:
    """The planner options a training script's arguments give (`--model`, `--base-url`, `--planner-mode`,
    `--recorded-path`, `--tokenizer`): those set, as `make_planner`'s keyword arguments."""
    options = {"model": args.model, "base_url": args.base_url, "mode": args.planner_mode, "path": args.recorded_path,
               "tokenizer": getattr(args, "tokenizer", None)}
    return {key: value for key, value in options.items() if value is not None}


__all__ = ["PLANNERS", "planner_kwargs", "HFPlanner", "OpenAIPlanner", "PlanDistribution", "Planner", "RecordedPlanner", "RecordedTableError", "RulesPlanner",
           "make_planner", "planner_class"]
