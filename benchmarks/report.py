"""Turns benchmark runs into a report: tables against the project's goals and learning curves.

    python -m benchmarks.report --runs benchmarks/runs/sweep --out benchmarks/results

Reads every <runs>/**/summary.json (written by the algorithm scripts and benchmarks.run) and writes
<out>/REPORT.md, <out>/summary.json and one PNG of learning curves (success rate vs frames, one
panel per task, shaded 95% bootstrap interval over seeds).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402
from scipy import stats  # noqa: E402

from teacher_wrappers.planners.base import BILL  # noqa: E402
from teacher_wrappers.training import atomic_path, write_text  # noqa: E402


@dataclass
class Args:
    runs: list[str] = field(default_factory=lambda: ["benchmarks/runs"])
    """folders searched for summary.json files"""
    out: str = "benchmarks/results"
    """folder for REPORT.md, summary.json and the plot"""
    name: str = "REPORT"
    """file stem of the report and its plot"""
    title: str = "Benchmark report"
    """heading of the report"""
    appendix: str | None = None
    """a markdown file appended to the report (how the runs were made, notes)"""
    readme: str | None = None
    """a markdown file (README.md) whose results table, between the lines README_START and README_END, is replaced
    by these runs' table (one row per method, one column per task)"""


def method_label(summary: dict) -> str:
    """The sweep's name of the method: ppo, ppo_rnd, ppo_teacher:recorded, llm4teach:recorded, teacher:rules, ...
    (a training run is named by its --exp-name: the script's name unless a named configuration set another)."""
    method = summary["method"]
    if method != "teacher":
        method = (summary.get("args") or {}).get("exp_name") or method
    return f"{method}:{summary['planner']}" if summary.get("planner") else method


def load(folders: list[str]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(p for folder in folders for p in Path(folder).rglob("summary.json")):
        try:
            summary = json.loads(path.read_text())
            task = summary["env_id"].split("/")[-1].removesuffix("-v0")
            label = method_label(summary)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            kind = "not valid JSON" if isinstance(error, json.JSONDecodeError) else type(error).__name__
            raise SystemExit(f"error: cannot read {path} ({kind}: {error}); rerun the sweep that made it "
                             "(it redoes runs whose summary is unreadable) or move the file away")
        groups[(task, label)].append(summary)
    return groups


def interval(values: list[float]) -> tuple[float, float]:
    """95% bootstrap interval of the mean (a point when all values agree or there is one)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    result = stats.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=2000,
                             random_state=0, method="percentile")
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def iqm(values: list[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (robust over few seeds)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def median_or_none(values: list) -> float | None:
    """Median over seeds; None when not every seed got there (a run that never reached 90% counts as worse)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.median(values))


def aggregate(groups) -> list[dict]:
    rows = []
    for (task, method), runs in sorted(groups.items()):
        success = [run["eval_success_rate"] for run in runs]
        low, high = interval(success)
        trained = [run for run in runs if run["method"] != "teacher"]
        rows.append({
            "task": task, "method": method, "seeds": len(runs),
            "final_success_mean": float(np.mean(success)), "final_success_ci95": [low, high],
            "final_success_iqm": iqm(success),
            "final_sampled_success_mean": float(np.mean([run.get("eval_sampled_success_rate", run["eval_success_rate"])
                                                         for run in runs])),
            "train_success_final": float(np.mean([run["learning_curve"]["success_rate"][-1] for run in trained]))
            if trained else None,
            "frames": int(np.median([run["frames"] for run in runs])),
            "frames_to_90": [run.get("frames_to_90") for run in trained],
            "frames_to_90_median": median_or_none([run.get("frames_to_90") for run in trained]),
            "wall_seconds_to_90_median": median_or_none([run.get("wall_seconds_to_90") for run in trained]),
            "sps_median": float(np.median([run["sps"] for run in trained])) if trained else None,
            "llm_queries": int(sum(run.get("teacher_stats", {}).get("queries", 0) for run in runs)),
            # the whole runs' LLM bill (summary.json's llm_* keys: warm-up, training, demos and evaluation)
            **{key: sum(run.get(key, 0) for run in runs) for key in BILL},
            "return_over_teacher_mean": _return_over_teacher(runs),
        })
    return rows


def _return_over_teacher(runs: list[dict]) -> float | None:
    """Mean over seeds of the student's greedy evaluation return over the teacher-alone return on the same
    seeds (ppo_teacher runs record both); above 1 the student surpassed its teacher."""
    ratios = [run["eval_mean_return"] / run["teacher_eval_mean_return"] for run in runs
              if run.get("teacher_eval_mean_return")]
    return float(np.mean(ratios)) if ratios else None


def _settled_curve(curve: dict, min_episodes: int = 50) -> tuple[list, list]:
    """(frames, success rate) from the point where enough episodes ended to trust the rate.

    Early on only the quick episodes have ended, and quick episodes are the successful ones.
    """
    counts = curve.get("episodes", [min_episodes] * len(curve["frames"]))
    start = next((i for i, count in enumerate(counts) if count >= min_episodes), len(counts) - 1)
    return [0.0] + curve["frames"][start:], [0.0] + curve["success_rate"][start:]


TASK_ORDER = ("SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey", "TwoDoor")


def _eval_curve(run: dict) -> tuple[list, list] | None:
    """(frames, greedy evaluation success) of a run's deployed student, from 0 at frame 0; None without one."""
    curve = run.get("eval_curve") or {}
    if not curve.get("frames"):
        return None
    return [0.0] + curve["frames"], [0.0] + curve["success_rate"]


def curves_plot(groups, path: Path, evaluation: bool = True) -> None:
    """One panel per task, one colour per method: the mean over seeds with its 95% bootstrap band, of greedy
    evaluation success (`evaluation`: the deployed student, at the runs' --eval-points) or of the training
    episodes' success rate; the teacher alone is a labelled dashed line."""
    tasks = sorted({task for task, _ in groups}, key=lambda task: (TASK_ORDER.index(task) if task in TASK_ORDER
                                                                    else len(TASK_ORDER), task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.2), squeeze=False)
    colours = {method: f"C{i}" for i, method in enumerate(sorted({method for _, method in groups}))}
    for ax, task in zip(axes[0], tasks):
        for (group_task, method), runs in sorted(groups.items()):
            trained = [run for run in runs if run["method"] != "teacher"]
            if group_task != task:
                continue
            if not trained:  # the teacher alone: a flat line at its success rate, labelled where it is drawn
                level = float(np.mean([run["eval_success_rate"] for run in runs]))
                ax.axhline(level, ls="--", lw=1, color="k", label=method)
                ax.annotate(f"{method} {level:.2f}", (0.01, level), xycoords=("axes fraction", "data"),
                            xytext=(0, 3), textcoords="offset points", fontsize=7)
                continue
            pairs = [_eval_curve(run) if evaluation else _settled_curve(run["learning_curve"]) for run in trained]
            pairs = [pair for pair in pairs if pair is not None]
            if not pairs:
                continue
            grid = np.linspace(0, max(run["frames"] for run in trained), 100)
            curves = np.array([np.interp(grid, *pair) for pair in pairs])
            line = ax.plot(grid, curves.mean(0), label=f"{method} ({len(curves)})", color=colours[method])[0]
            if len(curves) > 1:
                bands = np.array([interval(list(column)) for column in curves.T])
                ax.fill_between(grid, bands[:, 0], bands[:, 1], color=line.get_color(), alpha=0.2)
        ax.set_title(task)
        ax.set_xlabel("frames")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("greedy evaluation success" if evaluation else "success rate (training episodes)")
    legend = {}  # every method once, whichever panel drew it
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label.split(" (")[0], handle)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=len(legend), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _fmt(value, digits=0):
    if value is None:
        return "not reached"
    return f"{value:,.{digits}f}"


def markdown(rows: list[dict], title: str, plot: str) -> str:
    lines = [f"# {title}", "",
             "Final success: greedy policy on fixed evaluation seeds (teacher alone: sampled actions), mean over "
             "seeds with a 95% bootstrap interval and the interquartile mean (IQM); 'sampled': the student's "
             "actions sampled from its policy on the same seeds. Frames and wall seconds to "
             "90%: the first point where the success rate of the last 100 training episodes reached 0.9, "
             "median over seeds ('not reached' if any seed never did). Student / teacher: the student's mean "
             "greedy evaluation return over the teacher-alone mean return on the same seeds (above 1: the "
             "student surpassed its teacher).", "",
             "| task | method | seeds | final success (95% CI) | IQM | sampled | student / teacher | frames to 90% | "
             "wall s to 90% | SPS | LLM queries | LLM calls | LLM requests | tokens (prompt / completion) | LLM s |",
             "| --- " * 15 + "|"]
    for row in rows:
        low, high = row["final_success_ci95"]
        trained = row["sps_median"] is not None  # the teacher alone has no training to time
        lines.append(f"| {row['task']} | {row['method']} | {row['seeds']} | {row['final_success_mean']:.2f} "
                     f"({low:.2f}-{high:.2f}) | {row['final_success_iqm']:.2f} | {row['final_sampled_success_mean']:.2f} | "
                     + ("-" if row["return_over_teacher_mean"] is None else f"{row['return_over_teacher_mean']:.2f}") + " | "
                     + (f"{_fmt(row['frames_to_90_median'])} | {_fmt(row['wall_seconds_to_90_median'], 1)} | "
                        f"{_fmt(row['sps_median'])} | " if trained else "- | - | - | ")
                     + f"{row['llm_queries']} | {row['llm_calls']} | {row['llm_requests']} | "
                       f"{row['llm_prompt_tokens']} / {row['llm_completion_tokens']} | {row['llm_seconds']:.1f} |")
    lines += ["", f"![learning curves]({plot})", ""]
    return "\n".join(lines)


GREEDY_GOALS = {"SimpleDoorKey": 0.95, "LavaDoorKey": 0.95, "ColoredDoorKey": 0.90, "TwoDoor": 0.85}


def goals(rows: list[dict]) -> list[str]:
    """The project's goals for the student with the recorded teacher, met or missed and by how much."""
    find = {(row["task"], row["method"]): row for row in rows}
    lines = []
    for task in sorted({row["task"] for row in rows}):
        ours = find.get((task, "ppo_teacher:recorded"))
        if ours is None:
            continue
        greedy, sampled = ours["final_success_iqm"], ours["final_sampled_success_mean"]
        if task in GREEDY_GOALS:
            goal = GREEDY_GOALS[task]
            verdict = "met" if greedy >= goal and sampled - greedy <= 0.05 else "MISSED"
            lines.append(f"- {task}, greedy success (IQM, goal >= {goal:.2f} and within 0.05 of sampled): "
                         f"{greedy:.2f}, sampled {sampled:.2f} ({verdict})")
        ratio = ours["return_over_teacher_mean"]
        if task == "ColoredDoorKey" and ratio is not None:
            lines.append(f"- ColoredDoorKey, student / teacher-alone return (goal >= 1.4): {ratio:.2f} "
                         f"({'met' if ratio >= 1.4 else 'MISSED'})")
        if task == "SimpleDoorKey":
            frames = ours["frames_to_90_median"]
            verdict = "not reached" if frames is None else ("met" if frames <= 30_000 else "MISSED")
            lines.append(f"- SimpleDoorKey, frames to 90% (median, goal <= 30k): {_fmt(frames)} ({verdict})")
    return lines


README_START, README_END = "<!-- results table: python -m benchmarks.report --readme README.md -->", "<!-- end -->"
METHOD_ORDER = ("ppo", "ppo_rnd", "ppo_jsrl", "llm4teach", "ppo_teacher", "teacher")


def readme_table(rows: list[dict], report_link: str) -> str:
    """One row per method, one column per task: greedy / sampled success (IQM over seeds, mean), student / teacher
    return and frames to 90% (median); a method not run on a task shows '-'."""
    tasks = [task for task in TASK_ORDER if any(row["task"] == task for row in rows)]
    tasks += sorted({row["task"] for row in rows} - set(tasks))
    methods = sorted({row["method"] for row in rows},
                     key=lambda m: (METHOD_ORDER.index(m.split(":")[0]) if m.split(":")[0] in METHOD_ORDER else 99, m))
    find = {(row["task"], row["method"]): row for row in rows}

    def cell(row):
        if row is None:
            return "-"
        text = f"{row['final_success_iqm']:.2f} / {row['final_sampled_success_mean']:.2f}"
        if row["return_over_teacher_mean"] is not None:
            text += f", {row['return_over_teacher_mean']:.2f}x"
        if row["sps_median"] is not None:  # a trained method
            f90 = row["frames_to_90_median"]
            text += f", {'-' if f90 is None else f'{f90 / 1000:.0f}k'}"
        seeds = row["seeds"]
        return text + ("" if seeds >= 5 else f" ({seeds} seed{'s' if seeds > 1 else ''})")

    lines = ["| method | " + " | ".join(tasks) + " |", "| --- " * (len(tasks) + 1) + "|"]
    lines += [f"| `{method}` | " + " | ".join(cell(find.get((task, method))) for task in tasks) + " |"
              for method in methods]
    return "\n".join(lines) + f"\n\nFull report: [{report_link}]({report_link}).\n"


def replace_block(path: Path, block: str) -> None:
    text = path.read_text()
    if README_START not in text or README_END not in text.split(README_START, 1)[1]:
        raise SystemExit(f"error: {path} has no results block ({README_START} ... {README_END})")
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    write_text(path, f"{before}{README_START}\n{block}{README_END}{after}")


def main(args: Args) -> list[dict]:
    groups = load(args.runs)
    if not groups:
        raise SystemExit(f"no summary.json under {args.runs}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = aggregate(groups)
    plot = f"{args.name.lower()}_curves.png"
    curves_plot(groups, out / plot)
    goal_lines = goals(rows)
    text = markdown(rows, args.title, plot)
    if goal_lines:
        text += "\n## Goals\n\n" + "\n".join(goal_lines) + "\n"
    if args.appendix:
        text += "\n" + Path(args.appendix).read_text()
    write_text(out / f"{args.name}.md", text)
    write_text(out / f"{args.name.lower()}_summary.json", json.dumps(rows, indent=1) + "\n")
    if args.readme:
        readme = Path(args.readme)
        link = Path(os.path.relpath(out / f"{args.name}.md", readme.resolve().parent)).as_posix()
        replace_block(readme, readme_table(rows, link))
    print(text)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
