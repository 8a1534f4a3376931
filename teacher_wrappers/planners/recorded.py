"""Replays recorded LLM answer distributions: a real LLM's judgement, offline, free, reproducible.

The shipped table holds the answers of the reference paper's LLM teacher (vicuna-33b), see the
README for provenance. `python -m teacher_wrappers.planners.recorded SRC DST` converts a table in
the reference's JSON layout into this package's format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from teacher_wrappers.planners.base import PlanDistribution, Planner, normalise
from teacher_wrappers.styles import TextStyle
from teacher_wrappers.styles.paper import FORMAT_VERSION

DEFAULT_TABLE_FILE = "recorded_plans.json"
FALLBACK_PLAN = "explore"


class RecordedTableError(ValueError):
    """A recorded plan table file is malformed; the message names the file and the entry."""


def default_table_path() -> Path:
    return Path(str(resources.files("teacher_wrappers") / "data" / DEFAULT_TABLE_FILE))


def load_tables(path: str | Path) -> dict[str, dict[str, PlanDistribution]]:
    """Read and validate a table file: {"format_version", "tables": {task: {text: {plan: prob}}}}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RecordedTableError(f"{path}: cannot read recorded plan table: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise RecordedTableError(f"{path}: expected an object with a 'tables' object")
    if data.get("format_version") != FORMAT_VERSION:
        raise RecordedTableError(f"{path}: format_version {data.get('format_version')!r} does not match "
                                 f"the description format {FORMAT_VERSION!r}; re-record the answers")
    tables = {}
    for task, table in data["tables"].items():
        if not isinstance(table, dict):
            raise RecordedTableError(f"{path}: table {task!r} must map texts to plan distributions")
        tables[task] = {text: _validated(path, task, text, answers) for text, answers in table.items()}
    return tables


def _validated(path: Path, task: str, text: str, answers) -> PlanDistribution:
    where = f"{path}: table {task!r}, entry {text!r}"
    if not isinstance(answers, dict) or not answers:
        raise RecordedTableError(f"{where}: expected a non-empty {{plan: probability}} object")
    for plan, prob in answers.items():
        if not isinstance(prob, (int, float)) or isinstance(prob, bool) or not math.isfinite(prob) or prob < 0:
            raise RecordedTableError(f"{where}: plan {plan!r} has invalid probability {prob!r}")
    total = sum(answers.values())
    if total <= 0:
        raise RecordedTableError(f"{where}: probabilities sum to zero")
    # Rounding (each probability to two decimals, say) is rescaled away; anything more is a wrong table.
    if abs(total - 1.0) > max(0.01, 0.005 * len(answers)):
        raise RecordedTableError(f"{where}: probabilities sum to {total:g}, not 1")
    return normalise(dict(answers))


class RecordedPlanner(Planner):
    """Looks each text up in a recorded table; an unseen text gets `explore`, or the answer of the
    `fallback` planner (a Planner; `make_planner("recorded", fallback="rules")` builds one by name), and is
    counted in `fallbacks` and in `last_unknown` (the teacher's `unknown_texts`)."""

    name = "recorded"
    is_llm = True

    def __init__(self, task: str | None = None, table: str | None = None, path: str | Path | None = None,
                 fallback: Planner | None = None):
        super().__init__()
        if fallback is not None and not isinstance(fallback, Planner):
            raise TypeError(f"fallback must be a Planner, got {fallback!r} (make_planner builds one by name)")
        self.fallback = fallback
        self.path = Path(path) if path else default_table_path()
        tables = load_tables(self.path)
        self.table_name = table or task or "SimpleDoorKey"
        if self.table_name not in tables:
            raise ValueError(f"{self.path} has no table {self.table_name!r}; it has: {', '.join(tables)}")
        self.table = tables[self.table_name]
        self.fallbacks = 0

    def plan(self, texts: Sequence[str], style: TextStyle | str = "plain") -> list[PlanDistribution]:
        self.queries += len(texts)
        unknown = [text for text in texts if text not in self.table]
        self.fallbacks += len(unknown)
        self.last_unknown = set(unknown)
        self.last_misses = set()
        if unknown and self.fallback is not None:
            fallback_answers = dict(zip(unknown, self.fallback.plan(unknown, style)))
            self.last_misses = set(self.fallback.last_misses)
        else:
            fallback_answers = {text: [(FALLBACK_PLAN, 1.0)] for text in unknown}
        return [self.table[text] if text in self.table else fallback_answers[text] for text in texts]

    def bill(self) -> dict:
        """The fallback's: a table costs nothing, an LLM fallback does."""
        return super().bill() if self.fallback is None else self.fallback.bill()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "fallbacks": self.fallbacks,
                "fallback": None if self.fallback is None else self.fallback.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.fallbacks = state["fallbacks"]
        if self.fallback is not None and state["fallback"] is not None:
            self.fallback.load_state_dict(state["fallback"])

    def close(self) -> None:
        if self.fallback is not None:
            self.fallback.close()


def convert_reference_file(src: str | Path, dst: str | Path) -> None:
    """Reference layout ({"tables": {task: {text: [{"plan", "prob"}]}}}) -> this package's format."""
    source = json.loads(Path(src).read_text())
    tables = {task: {text: {a["plan"]: a["prob"] for a in answers} for text, answers in table.items()}
              for task, table in source["tables"].items()}
    tables.setdefault("LavaDoorKey", tables["SimpleDoorKey"])  # the reference reuses SimpleDoorKey's
    out = {"format_version": FORMAT_VERSION, "about": source.get("about", ""),
           "teacher_success_reference": source.get("teacher_success_reference", {}), "tables": tables}
    Path(dst).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    convert_reference_file(sys.argv[1], sys.argv[2])
