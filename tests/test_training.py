"""The run machinery the training scripts share (teacher_wrappers.training), tested as units.

End-to-end runs of the scripts (subprocesses) are in test_algorithms.py and test_resume_and_cli.py: they
check what only a real run shows (the command line, signals, resuming).
"""

import os
import signal
import sys
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


# -- the parts of a run, each on its own --------------------------------------------------------------

def test_episode_stats_count_episodes_and_leave_the_greedy_ones_out_of_the_success_rate():
    logged = []
    stats = training.EpisodeStats(3, greedy_envs=1, window=2, curves=("lambda",),
                                  scalar=lambda tag, value, step: logged.append((tag, float(value), step)))
    assert stats.record_step(np.zeros(3), np.zeros(3, dtype=bool)) == []
    finished = stats.record_step(np.array([1.0, 0.5, 0.0]), np.array([True, True, True]))
    assert finished == [(0, True), (1, True), (2, False)] and stats.global_step == 6
    assert stats.success_rate == 0.5 and stats.mean_return() == 0.25  # env 0 acts greedily: left out
    assert ("charts/greedy_episodic_return", 1.0, 6) in logged and ("charts/episodic_length", 2.0, 6) in logged
    assert stats.mean_return(at_least=3) is None and list(stats.episode_lengths) == [0, 0, 0]
    stats.add_point(1.5, **{"lambda": 0.3})
    assert stats.curve == {"frames": [6], "wall_seconds": [1.5], "success_rate": [0.5], "episodic_return": [0.25],
                           "episodes": [2], "lambda": [0.3]}
    saved = stats.state_dict()
    stats.record_step(np.ones(3), np.array([False, True, False]))
    stats.add_point(2.0, **{"lambda": 0.2})
    assert saved["global_step"] == 6 and len(saved["curve"]["frames"]) == 1  # a copy: it did not move on
    again = training.EpisodeStats(3, greedy_envs=1, window=2, curves=("lambda",))
    again.load_state_dict(saved)
    assert again.state_dict()["curve"] == saved["curve"] and again.success_rate == 0.5


def test_evaluation_points_are_spread_over_the_training_the_last_one_final():
    @dataclass
    class EvalArgs:
        eval_points: int = 4
        eval_episodes: int = 10
        eval_envs: int = 3
        eval_seed: int = 100

    evaluation = training.Evaluation(EvalArgs())
    evaluation.plan(lambda: None, 8)
    assert evaluation.at == {2, 4, 6} and list(evaluation.seeds()) == list(range(100, 110))
    evaluation.plan(None, 8)  # no env to evaluate on: no curve
    assert evaluation.at == frozenset()
    evaluation = training.Evaluation(EvalArgs(eval_points=1))
    evaluation.plan(lambda: None, 8)
    assert evaluation.at == frozenset()
    evaluation.end(800, (0.5, 0.4))
    assert evaluation.curve == {"frames": [800], "success_rate": [0.5], "mean_return": [0.4]}


def test_the_guard_holds_the_handlers_only_while_installed(tmp_path):
    before = sys.excepthook, signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    guard = training.Guard()
    guard.install(tmp_path, lambda: None)
    assert sys.excepthook is not before[0] and signal.getsignal(signal.SIGTERM) == guard._on_signal
    os.kill(os.getpid(), signal.SIGTERM)  # only noted: the iteration finishes first
    assert guard.interrupted
    guard.remove()
    assert (sys.excepthook, signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    guard.remove()  # twice: nothing more to put back


@dataclass
class RunArgs(Args):  # what a Run reads besides
    exp_name: str = "test"
    run_name: str | None = "unit"
    success_window: int = 100
    capture_video: bool = False
    track: bool = False
    progress: bool = False
    checkpoint_every: int = 2
    eval_points: int = 0
    eval_seed: int = 1000
    batch_size: int = 8
    num_iterations: int = 3


def tiny_envs(num_envs):
    import gymnasium as gym

    from teacher_wrappers.student import student_env

    return gym.vector.SyncVectorEnv([lambda: student_env("MiniGrid-Empty-5x5-v0")] * num_envs)


def test_a_run_changes_nothing_outside_itself_until_it_starts_and_puts_it_back_when_it_ends(tmp_path):
    handlers = lambda: (sys.excepthook, signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    before = handlers()
    run = training.Run(RunArgs(run_dir=str(tmp_path), num_envs=2), "ppo.py")
    assert handlers() == before and not (tmp_path / "unit").exists()
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    envs = tiny_envs(2)
    next_obs, next_done = run.start(envs, {"agent": net, "optimizer": optimizer}, lambda: {"mine": 1})
    assert handlers() != before and run.global_step == 0 and not next_done.any()
    for iteration in run.iterations():
        for _ in range(4):
            next_obs, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
            run.record_step(reward, terminated | truncated)
        net(torch.ones(3)).sum().backward()
        optimizer.step()
        run.end_iteration(iteration, next_obs, next_done)
    assert [path.name for path in sorted((tmp_path / "unit/checkpoints").iterdir())] == ["iter_000002.pt",
                                                                                          "latest.pt"]
    run.end_training()
    summary = run.write_summary("test", (0.5, 0.25), (1.0, 0.5))
    assert handlers() == before
    assert summary["frames"] == 24 and summary["eval_success_rate"] == 0.5 and summary["learning_curve"]["frames"] == \
        [8, 16, 24]
    checkpoint = torch.load(tmp_path / "unit/checkpoints/latest.pt", weights_only=False)
    assert checkpoint["iteration"] == 3 and checkpoint["state"] == {"mine": 1} and checkpoint["envs"] is not None


def test_a_snapshot_holds_copies_that_the_next_iteration_does_not_change(tmp_path):
    args = RunArgs(run_dir=str(tmp_path), num_envs=2)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(3)).sum().backward()
    optimizer.step()  # the optimizer has state: its moments
    checkpoints = training.Checkpoints("ppo.py", args, "unit", tmp_path / "checkpoints")
    envs = tiny_envs(2)
    next_obs, _ = envs.reset(seed=1)
    checkpoints.attach(envs, {"agent": net, "optimizer": optimizer})
    snapshot = checkpoints.take(1, {"global_step": 8}, next_obs, torch.zeros(2))
    saved = {key: value.clone() for key, value in net.state_dict().items()}
    moment = optimizer.state_dict()["state"][0]["exp_avg"].clone()
    net(torch.ones(3)).sum().backward()
    optimizer.step()  # the next iteration's update
    envs.step(envs.action_space.sample())
    assert all(torch.equal(snapshot["agent"][key], saved[key]) for key in saved)
    assert torch.equal(snapshot["optimizer"]["state"][0]["exp_avg"], moment)
    assert not torch.equal(net.weight, saved["weight"])
    restored = training.Checkpoints("ppo.py", args, "unit", tmp_path / "checkpoints")
    restored.attach(envs, {"agent": net, "optimizer": optimizer})
    obs, _ = restored.restore(snapshot)  # back to the snapshot's state, the snapshot unchanged
    assert torch.equal(net.weight, saved["weight"]) and all(np.array_equal(obs[key], next_obs[key]) for key in obs)
    optimizer.step()
    assert torch.equal(snapshot["optimizer"]["state"][0]["exp_avg"], moment)
