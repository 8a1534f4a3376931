"""The run machinery the training scripts share: everything that is not the algorithm.

`algorithms/ppo.py` and the other scripts keep the algorithm (settings, environments, the network's use, the
rollout, GAE, the update); this package keeps, once, what makes a run safe to stop and resume and easy to compare.
Each part reads, and is tested, on its own:

- `checks`: `fail`, `check_args`, `check_choice`: one-line errors (exit 2) for bad settings, before anything is
  written.
- `checkpoints`: what a checkpoint holds (weights, optimizer, random generators, sub-environments, the teacher's
  state, the statistics, the script's own state), `Checkpoints` (consistent snapshots, written atomically with
  `save_torch`), and `load_checkpoint`, which refuses in one line a file that is not a checkpoint of the script
  or was written with other settings (`RESUME_FREE` lists the settings a resumed run may change).
- `stats`: `EpisodeStats`, the episodes' returns and lengths, the success rate and the learning curve;
  `first_reaching`.
- `logs`: `RunLogs`, TensorBoard (wandb with --track) and the progress bar.
- `evaluation`: `play_episodes`, `evaluate` (vectorised, on fixed seeds) and a run's `Evaluation` (its seeds, the
  curve of evaluations during training, the final one).
- `guard`: `Guard`, Ctrl-C/SIGTERM (finish the iteration, write a checkpoint, exit 130) and crashes (write the
  last iteration's checkpoint and `error.log`, one line, exit 1), installed only while a run trains.
- `run`: `Run`, the facade the scripts call, and the summary (`summary.json`).

`atomic_path` and `write_text` (teacher_wrappers.atomic): a reader sees the old file or the new one, never half.
"""

from teacher_wrappers.atomic import atomic_path, write_text
from teacher_wrappers.training.checkpoints import (
    CHECKPOINT_FORMAT,
    RESUME_FREE,
    Checkpoints,
    checkpoint_differences,
    load_checkpoint,
    load_vector_env_state,
    rng_state,
    save_torch,
    set_rng_state,
    vector_env_state,
)
from teacher_wrappers.training.checks import check_args, check_choice, fail, one_line
from teacher_wrappers.training.evaluation import (
    Evaluation,
    evaluate,
    play_episodes,
    repeats_mean_loops,
)
from teacher_wrappers.training.guard import Guard, crash_handler
from teacher_wrappers.training.logs import RunLogs
from teacher_wrappers.training.run import Run, summary_of
from teacher_wrappers.training.stats import EpisodeStats, first_reaching

__all__ = ["CHECKPOINT_FORMAT", "RESUME_FREE", "Checkpoints", "EpisodeStats", "Evaluation", "Guard", "Run", "RunLogs",
           "atomic_path", "check_args", "check_choice", "checkpoint_differences", "crash_handler", "evaluate", "fail",
           "first_reaching", "load_checkpoint", "load_vector_env_state", "one_line", "play_episodes",
           "repeats_mean_loops", "rng_state", "save_torch", "set_rng_state", "summary_of", "vector_env_state",
           "write_text"]
