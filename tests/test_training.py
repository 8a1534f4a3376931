"""The run machinery the training scripts share (teacher_wrappers.training), tested as units.

End-to-end runs of the scripts (subprocesses) are in test_algorithms.py and test_resume_and_cli.py: they
check what only a real run shows (the command line, signals, resuming).
"""

import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from teacher_wrappers import training


@dataclass
class Args:  # the settings every script has, as the scripts' tyro dataclasses hold them
    env_id: str = "TeacherWrappers/SimpleDoorKey-v0"
    seed: int = 1
    total_timesteps: int = 512
    num_envs: int = 4
    num_steps: int = 32
    num_minibatches: int = 4
    update_epochs: int = 3
    greedy_fraction: float = 0.125
    student: str = "mlp"
    eval_episodes: int = 100
    eval_envs: int = 32
    run_dir: str = "runs"
    resume: str | None = None
    resume_allow_budget_change: bool = False


def one_line_exit(capsys, call) -> str:
    with pytest.raises(SystemExit) as exit_:
        call()
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("changes,message", [
    ({"total_timesteps": 0}, "--total-timesteps 0 is below one batch (--num-envs x --num-steps = 128)"),
    ({"num_envs": 0}, "--num-envs must be at least 1, got 0"),
    ({"num_steps": -1}, "--num-steps must be at least 1, got -1"),
    ({"num_minibatches": 200}, "--num-minibatches 200 is more than the batch of 128 samples"),
    ({"greedy_fraction": 1.0}, "--greedy-fraction must be at least 0 and below 1, got 1.0"),
    ({"student": "gru"}, "unknown --student 'gru'; valid: mlp, lstm"),
    ({"student": "lstm", "num_envs": 6}, "--num-envs 6 must be a multiple of --num-minibatches 4"),
    ({"env_id": "TeacherWrappers/SimpleDorKey-v0"}, "unknown env id 'TeacherWrappers/SimpleDorKey-v0'; valid: "
                                                    "TeacherWrappers/SimpleDoorKey-v0"),
    ({"env_id": "CartPole-v1"}, "CartPole-v1 is not a MiniGrid environment"),
])
def test_bad_settings_get_one_line(capsys, changes, message):
    assert message in one_line_exit(capsys, lambda: training.check_args(Args(**changes)))


@pytest.mark.parametrize("changes", [
    {}, {"env_id": "MiniGrid-Empty-5x5-v0"}, {"total_timesteps": 128}, {"num_minibatches": 128},
    {"greedy_fraction": 0.0}, {"student": "lstm", "num_envs": 8},  # at the edges of what is allowed
])
def test_good_settings_pass_silently_and_unchanged(capsys, changes):
    args = Args(**changes)
    training.check_args(args)  # no SystemExit
    assert args == Args(**changes) and capsys.readouterr() == ("", "")


def test_choices_pass_silently_or_name_the_valid_ones(capsys):
    training.check_choice("adaptive", ("reference", "adaptive"), "schedule", "schedules")  # no SystemExit
    assert capsys.readouterr() == ("", "")
    line = one_line_exit(capsys, lambda: training.check_choice("cosine", ("reference", "adaptive"), "schedule",
                                                               "schedules"))
    assert line == "error: unknown schedule 'cosine'; valid schedules: reference, adaptive"


def test_checkpoint_differences_ignore_what_does_not_change_the_training():
    saved = {**Args().__dict__, "seed": 2, "eval_envs": 8, "run_dir": "elsewhere", "total_timesteps": 1024}
    assert training.checkpoint_differences(saved, Args()) == ["--seed 1 (checkpoint: 2)",
                                                              "--total-timesteps 512 (checkpoint: 1024)"]
    allowed = Args(resume_allow_budget_change=True)
    assert training.checkpoint_differences(saved, allowed) == ["--seed 1 (checkpoint: 2)"]
    assert training.checkpoint_differences({**saved, "visits": True}, allowed)[-1] == \
        "--visits (absent) (checkpoint: True)"  # a setting of another version of the script
    # a setting added after the checkpoint was written: fine at its default, named otherwise
    older = {key: value for key, value in saved.items() if key != "num_steps"}
    assert training.checkpoint_differences(older, allowed) == ["--seed 1 (checkpoint: 2)"]
    assert training.checkpoint_differences(older, Args(num_steps=64, resume_allow_budget_change=True))[0] == \
        "--num-steps 64 (checkpoint: 32)"


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "random bytes", "a folder", "no settings",
                                    "other script", "older format"])
def test_checkpoints_that_cannot_be_resumed_are_named(tmp_path, capsys, damage):
    path = tmp_path / "latest.pt"
    good = {"format": training.CHECKPOINT_FORMAT, "script": "ppo.py", "args": Args().__dict__}
    training.save_torch(good, path)
    if damage == "missing":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif damage == "a folder":
        path.unlink()
        path.mkdir()
    elif damage == "no settings":
        torch.save({"agent": {}}, path)
    elif damage == "other script":
        torch.save({**good, "script": "ppo_teacher.py"}, path)
    elif damage == "older format":
        torch.save({**good, "format": None}, path)
    line = one_line_exit(capsys, lambda: training.load_checkpoint(path, Args(), "ppo.py"))
    assert str(path) in line
    if damage == "other script":
        assert "written by ppo_teacher.py, not ppo.py" in line
    training.save_torch(good, tmp_path / "good.pt")  # while a good one loads
    assert training.load_checkpoint(tmp_path / "good.pt", Args(), "ppo.py")["script"] == "ppo.py"


def test_atomic_writes_leave_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "sub" / "summary.json"
    training.write_text(path, "old")
    with pytest.raises(RuntimeError), training.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and list(path.parent.iterdir()) == [path]  # no temporary file left
    training.write_text(path, "new")
    assert path.read_text() == "new"


def test_random_generators_are_restored():
    state = training.rng_state()
    first = (torch.rand(3), np.random.rand(3), __import__("random").random())
    training.set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_frames_to_90_need_a_full_window():
    curve = {"success_rate": [0.95, 0.5, 0.92, 0.97], "episodes": [3, 50, 100, 100]}
    assert training.first_reaching(curve, 0.9, 100) == 2
    assert training.first_reaching(curve, 0.99, 100) is None
