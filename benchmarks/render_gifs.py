"""Renders a trained student solving each task as a GIF, with MiniGrid's own renderer.

    python -m benchmarks.render_gifs --runs benchmarks/runs/sweep --out benchmarks/results/gifs

For every task it takes the ppo_teacher run with the best evaluation success under --runs, loads its
final checkpoint, and plays the greedy policy on the first evaluation seeds it solves. The student sees what
it saw in training (`teacher_wrappers.student`: the memory map, the mission on plain MiniGrid/BabyAI ids, the
revisit count of a `--visits` run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from PIL import Image

from teacher_wrappers.student import Agent, student_env
from teacher_wrappers.training import atomic_path


@dataclass
class Args:
    runs: str = "benchmarks/runs"
    """folder searched for ppo_teacher runs (summary.json + checkpoints/latest.pt)"""
    out: str = "benchmarks/results/gifs"
    """folder for <task>.gif"""
    method: str = "ppo_teacher"
    """which method's student to show"""
    episodes: int = 2
    """solved episodes per GIF"""
    tile_size: int = 24
    """pixels per grid cell"""
    tries: int = 50
    """evaluation seeds played per task, at most, to find the solved episodes"""


def best_runs(runs: Path, method: str) -> dict[str, Path]:
    best: dict[str, tuple[float, Path]] = {}
    for path in runs.rglob("summary.json"):
        summary = json.loads(path.read_text())
        if summary["method"] != method or not (path.parent / "checkpoints/latest.pt").exists():
            continue
        env_id = summary["env_id"]
        if env_id not in best or summary["eval_success_rate"] > best[env_id][0]:
            best[env_id] = (summary["eval_success_rate"], path.parent)
    return {env_id: run for env_id, (_, run) in best.items()}


def load_student(run: Path) -> tuple[Agent, dict]:
    """The trained network of a run's final checkpoint, and the run's settings."""
    state = torch.load(run / "checkpoints/latest.pt", weights_only=False, map_location="cpu")
    settings = state["args"]
    env = student_env(settings["env_id"], settings.get("visits", False))
    agent = Agent.for_space(env.observation_space, int(env.action_space.n), q_head="q.weight" in state["agent"],
                            recurrent=settings.get("student") == "lstm")
    env.close()
    agent.load_state_dict(state["agent"])
    return agent.eval(), settings


def play(agent: Agent, env_id: str, episodes: int, first_seed: int, tile_size: int,
         visits: bool = False, tries: int = 50) -> list[Image.Image]:
    """Frames of the first `episodes` episodes the agent solves, from seed `first_seed` on (`tries` seeds at most)."""
    env = student_env(env_id, visits, render_mode="rgb_array", tile_size=tile_size)
    frames: list[Image.Image] = []
    solved, seed = 0, first_seed
    while solved < episodes and seed < first_seed + tries:
        obs, _ = env.reset(seed=seed)
        agent.reset()  # a recurrent student forgets the last episode
        episode = [Image.fromarray(env.render())]
        done, reward = False, 0.0
        while not done:
            action = agent.act({key: np.asarray(value)[None] for key, value in obs.items()})[0]
            obs, reward, terminated, truncated, _ = env.step(int(action))
            episode.append(Image.fromarray(env.render()))
            done = terminated or truncated
        if reward > 0:
            frames += episode + [episode[-1]] * 4  # hold the last frame a moment
            solved += 1
        seed += 1
    env.close()
    return frames


def main(args: Args) -> list[Path]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for env_id, run in sorted(best_runs(Path(args.runs), args.method).items()):
        agent, settings = load_student(run)
        frames = play(agent, env_id, args.episodes, settings["eval_seed"], args.tile_size, settings.get("visits", False),
                      args.tries)
        if not frames:
            print(f"{env_id}: the student of {run} solved no episode; no GIF")
            continue
        path = out / f"{env_id.split('/')[-1].removesuffix('-v0')}.gif"
        with atomic_path(path) as tmp:
            frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=150, loop=0)
        written.append(path)
        print(f"{env_id}: {len(frames)} frames from {run} -> {path}")
    return written


if __name__ == "__main__":
    main(tyro.cli(Args))
