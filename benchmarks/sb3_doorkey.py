"""TeacherPPO (teacher_wrappers.sb3) against plain SB3 PPO with the same network and budget on SimpleDoorKey.

    python -m benchmarks.sb3_doorkey --seeds 0 1 2 --frames 100000       # one training process at a time

Each run: 16 envs, TeacherPPO's defaults (recorded teacher, adaptive schedule); "plain" is the same update with
lambda = 0 throughout (SB3's PPO loss alone, the teacher switched off). Then 50 episodes on fixed seeds with
sampled actions (`predict(..., deterministic=False)`) and 50 greedy. Each run is written to
benchmarks/results/sb3/<algo>_<seed>.json as it finishes; `--table` writes benchmarks/results/sb3.md from them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import torch

RESULTS = Path(__file__).parent / "results"
ENV_ID = "TeacherWrappers/SimpleDoorKey-v0"
EVAL_SEED = 1_000_000


def teacher_env():
    from teacher_wrappers import TeacherWrapper
    return TeacherWrapper(gym.make(ENV_ID), planner="recorded")


def run(algo: str, seed: int, frames: int, episodes: int) -> dict:
    from stable_baselines3.common.env_util import make_vec_env

    from teacher_wrappers.sb3 import TeacherPPO, success_rate

    torch.set_num_threads(1)
    env = make_vec_env(teacher_env, n_envs=16, seed=seed)
    options = {} if algo == "teacher" else {"schedule": lambda *_: 0.0, "teacher_eval_episodes": 0}
    start = time.perf_counter()
    model = TeacherPPO("MultiInputPolicy", env, seed=seed, **options)
    model.learn(frames)
    wall = time.perf_counter() - start
    return {"algo": algo, "seed": seed, "frames": model.num_timesteps, "wall_s": round(wall, 1),
            "sps": round(model.num_timesteps / wall), "teacher_alone_return": model.teacher_return,
            "sampled_success": success_rate(model, teacher_env(), episodes, deterministic=False, seed=EVAL_SEED),
            "greedy_success": success_rate(model, teacher_env(), episodes, deterministic=True, seed=EVAL_SEED),
            "eval_episodes": episodes,
            "teacher_queries": model.teacher_stats()["queries"]}


def table() -> str:
    rows = [json.loads(path.read_text()) for path in sorted((RESULTS / "sb3").glob("*.json"))]
    lines = ["| algo | seed | frames | sampled success | greedy success | SPS | wall (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['algo']} | {r['seed']} | {r['frames']} | {r['sampled_success']:.2f} | {r['greedy_success']:.2f} "
              f"| {r['sps']} | {r['wall_s']} |" for r in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["teacher", "plain"], choices=["teacher", "plain"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--table", action="store_true", help="only write benchmarks/results/sb3.md")
    args = parser.parse_args()
    if not args.table:
        (RESULTS / "sb3").mkdir(parents=True, exist_ok=True)
        for algo in args.algos:
            for seed in args.seeds:
                result = run(algo, seed, args.frames, args.episodes)
                print(json.dumps(result), flush=True)
                (RESULTS / "sb3" / f"{algo}_{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    header = ("# TeacherPPO vs plain SB3 PPO, SimpleDoorKey (`python -m benchmarks.sb3_doorkey`)\n\n"
              "16 envs, 100k frames, 50 evaluation episodes per row. SPS and wall: one core of a shared 2-core machine "
              "(other jobs ran beside the teacher runs: compare success, not speed, across rows).\n\n")
    (RESULTS / "sb3.md").write_text(header + table())
