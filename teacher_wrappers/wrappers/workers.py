"""TeacherWorkersVectorEnv: sub-envs in worker processes, each worker with its own teacher."""

from __future__ import annotations

from dataclasses import asdict

import gymnasium as gym

from teacher_wrappers.grouped import GroupedAsyncVectorEnv
from teacher_wrappers.teacher import Teacher, TeacherStats
from teacher_wrappers.wrappers.base import check_visits


class TeacherWorkersVectorEnv(gym.vector.VectorWrapper):
    """Sub-envs in worker processes, each worker with its own TeacherVectorWrapper over its sub-envs.

    For planners that cost no LLM call (recorded, rules): the teacher's work spreads over the cores
    instead of running for every sub-env in the main process, and each worker asks its teacher once
    per step for its whole group, after stepping it (as TeacherVectorWrapper does here). Offers what
    the training scripts use of TeacherVectorWrapper: `teacher_enabled`, `teacher_stats()` (summed
    over the workers' teachers), `teacher_state_dict()` / `load_teacher_state_dict()` (the workers'
    teachers and visit counts, and the main process's teacher), and `teacher`, a teacher in the main
    process with the same planner (for its attributes and for teacher-alone episodes; it does not act for
    the sub-envs).
    """

    def __init__(self, env: GroupedAsyncVectorEnv, teacher: Teacher):
        super().__init__(env)
        self.teacher = teacher
        self._enabled = True

    @property
    def teacher_enabled(self) -> bool:
        return self._enabled

    @teacher_enabled.setter
    def teacher_enabled(self, enabled: bool) -> None:
        if enabled != self._enabled:  # one round trip to the workers, and only on a change
            self.env.set_group_attr("teacher_enabled", bool(enabled))
            self._enabled = bool(enabled)

    def teacher_stats(self) -> dict:
        """The counters of the workers' teachers, summed (the rates worked out from the sums)."""
        summaries = self.env.call_groups("teacher_stats")
        total = sum((TeacherStats.of(summary) for summary in summaries), TeacherStats())
        return {**total.summary(), "planner": summaries[0]["planner"], "teachers": len(summaries)}

    def teacher_state_dict(self) -> dict:
        """Each worker's teacher state, each sub-env's visit counts and the main process's teacher state."""
        states = self.env.call_groups("teacher_state_dict")
        return {"teacher": self.teacher.state_dict(), "workers": [state["teacher"] for state in states],
                "visits": [visits for state in states for visits in state["visits"]]}

    def load_teacher_state_dict(self, state: dict) -> None:
        """Continue from `teacher_state_dict()`, on sub-envs in the state they were in then.

        A state saved with as many workers continues exactly; one saved with another number of workers
        (another machine) gives the first worker the summed counters and every worker all the answers.
        """
        check_visits(state["visits"], self.num_envs)
        workers = state["workers"]
        if len(workers) != len(self.env.groups):
            merged = {**workers[0], "stats": asdict(sum((TeacherStats.of(w["stats"]) for w in workers), TeacherStats())),
                      "memo": {text: answer for w in workers for text, answer in w["memo"].items()},
                      "unknown": sorted({text for w in workers for text in w["unknown"]})}
            merged["planner"] = {**workers[0]["planner"], "queries": sum(w["planner"]["queries"] for w in workers)}
            idle = {**merged, "stats": asdict(TeacherStats()), "planner": {**merged["planner"], "queries": 0}}
            workers = [merged] + [idle] * (len(self.env.groups) - 1)
        self.teacher.load_state_dict(state["teacher"])
        self.env.call_groups("load_teacher_state_dict", [
            ({"teacher": teacher, "visits": [state["visits"][i] for i in group]},)
            for teacher, group in zip(workers, self.env.groups)])
