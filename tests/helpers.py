"""Hand-built memory maps for unit tests; TensorBoard scalars of a run."""

from __future__ import annotations

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX


def room_map(width: int = 7, height: int = 7, seen: bool = True) -> np.ndarray:
    """A walled room filling the grid, every cell seen (or none, with seen=False)."""
    memory = np.zeros((width, height, 4), dtype=np.uint8)
    if seen:
        memory[..., 0] = OBJECT_TO_IDX["empty"]
        memory[0, :, 0] = memory[-1, :, 0] = memory[:, 0, 0] = memory[:, -1, 0] = OBJECT_TO_IDX["wall"]
        memory[0, :, 1] = memory[-1, :, 1] = memory[:, 0, 1] = memory[:, -1, 1] = COLOR_TO_IDX["grey"]
    return memory


def put(memory: np.ndarray, pos, kind: str, colour: str = "grey", state: str | None = None) -> None:
    memory[pos][0] = OBJECT_TO_IDX[kind]
    memory[pos][1] = COLOR_TO_IDX[colour]
    memory[pos][2] = STATE_TO_IDX[state] if state else 0


def place_agent(memory: np.ndarray, pos, heading: int, carrying: tuple[str, str] | None = None) -> None:
    """The agent's cell shows what it carries (or empty), as in MemoryMap.observation()."""
    memory[..., 3] = 0
    memory[pos][3] = heading + 1
    if carrying:
        put(memory, pos, *carrying)
    else:
        memory[pos][:3] = (OBJECT_TO_IDX["empty"], 0, 0)


def run_teacher(env, episodes: int, seed: int = 0, on_step=None, on_episode_end=None) -> float:
    """Act with actions sampled from obs["teacher_probs"]; returns the success rate.

    `on_step(obs)` sees every observation, `on_episode_end(env)` every finished episode.
    """
    rng = np.random.default_rng(seed)
    successes = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        terminated = truncated = False
        while not (terminated or truncated):
            if on_step:
                on_step(obs)
            probs = obs["teacher_probs"].astype(np.float64)
            obs, reward, terminated, truncated, _ = env.step(int(rng.choice(len(probs), p=probs / probs.sum())))
        if on_episode_end:
            on_episode_end(env)
        successes += reward > 0
    return successes / episodes


def scalars(run_path) -> dict[str, list[float]]:
    """Every scalar a TensorBoard event folder holds, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_path))
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
