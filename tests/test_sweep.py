"""The sweep never loses or mixes work: stopping, restarting, locking, validating, what counts as done; the report.

A sweep's runs are always processes of their own. The sweep itself runs as a user runs `python -m benchmarks.run`
(a subprocess) where it receives a signal or is killed; elsewhere it runs in this process (`sweep_here`: the same
command line, output and exit status). One finished sweep (module fixture) serves the tests that read or continue it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tyro

from benchmarks import report
from benchmarks.sweep import cli, job
from teacher_wrappers.training import RESUME_FREE, atomic_path, write_text

ROOT = Path(__file__).resolve().parents[1]
EXTRA = "--num-envs 2 --num-steps 64 --eval-episodes 2"
# the finished sweep the fixture makes: two seeds of plain PPO and of the rules teacher alone
FINISHED = {"methods": ["ppo", "teacher:rules"], "tasks": ["SimpleDoorKey"], "seeds": [1, 2], "total_timesteps": 128,
            "teacher_episodes": 2, "workers": 2, "extra": EXTRA}


def sweep(*args, out, wait=True, env=None):
    cmd = [sys.executable, "-m", "benchmarks.run", "--out", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("RAY_ADDRESS", None)  # Ray would take it over --ray-address
    if wait:
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Swept:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def sweep_here(capsys, *args, out) -> Swept:
    """`python -m benchmarks.run --out OUT ARGS` in this process (its runs are still processes of their own)."""
    capsys.readouterr()
    code = cli.main(tyro.cli(cli.Args, args=["--out", str(out), *args]))
    captured = capsys.readouterr()
    return Swept(code, captured.out, captured.err)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    """The folder of a finished sweep (FINISHED): read it, or copy it to change it."""
    out = tmp_path_factory.mktemp("sweep") / "runs"
    assert cli.main(cli.Args(**FINISHED, out=str(out))) == 0
    return out


def processes_using(out: Path) -> list[int]:
    """Live processes whose command line names the sweep folder (the sweep's runs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().split(") ")[1][0]
            except OSError:
                continue
            if str(out) in cmdline and state != "Z":
                pids.append(int(entry.name))
    return pids


# A second sweep in this process asks for a tiny budget: were the lock not held, it would run briefly (or name a
# mismatch) and the test fail, not hang on 10^8 frames. The lock is taken before anything else is looked at.
NO_HANG = ["--total-timesteps", "128"]


def wait_for(condition, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


# -- arguments ------------------------------------------------------------------------------------

def test_every_method_and_task_is_checked_before_the_first_run(tmp_path, capsys):
    proc = sweep_here(capsys, "--methods", "teacher:rules", "teacher:gpt5", "ppo_teacher", "dqn", "--tasks",
                      "SimpleDoorKey", "Nope", "CartPole-v1", out=tmp_path / "runs")
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    for problem in ("unknown planner 'gpt5'", "method 'ppo_teacher': unknown planner ''", "unknown method 'dqn'",
                    "unknown task 'Nope'", "task 'CartPole-v1' is not a MiniGrid environment"):
        assert problem in line
    assert not list((tmp_path / "runs").glob("*__*"))  # nothing ran, not even teacher:rules


def test_bad_extra_arguments_are_refused_before_the_first_run(tmp_path, capsys):
    proc = sweep_here(capsys, "--methods", "teacher:rules", "ppo", "--extra=--num-envz 2", out=tmp_path / "runs")
    assert proc.returncode == 2 and "--extra '--num-envz 2' is not valid for algorithms/ppo.py" in proc.stderr
    assert not list((tmp_path / "runs").glob("*__*"))


def test_the_exit_status_says_whether_every_run_succeeded(tmp_path, capsys):
    # --num-envs 0 parses, so the sweep starts; the training script then refuses it: a failed run
    proc = sweep_here(capsys, "--methods", "teacher:rules", "ppo", "--tasks", "SimpleDoorKey", "--seeds", "1",
                      "--teacher-episodes", "2", "--total-timesteps", "128", "--extra=--num-envs 0", out=tmp_path / "runs")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SimpleDoorKey__ppo__1: FAILED (exit 2)" in proc.stdout and "1 of 2 runs FAILED" in proc.stderr
    assert (tmp_path / "runs/SimpleDoorKey__teacher-rules__1/summary.json").exists()


# -- stopping and restarting ----------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_sweep_and_all_its_runs(tmp_path, signum, capsys):
    out = tmp_path / "runs"
    args = ["--methods", "ppo", "--tasks", "SimpleDoorKey", "--seeds", "1", "2", "--workers", "1",
            "--total-timesteps", "100000000", f"--extra={EXTRA}"]
    first = sweep(*args, out=out, wait=False)
    try:
        wait_for(lambda: list((out / "SimpleDoorKey__ppo__1").glob("events.*")))
        if signum == signal.SIGTERM:  # the same folder while the first sweep runs
            second = sweep_here(capsys, *args, *NO_HANG, out=out)
            assert second.returncode == 2 and f"another sweep (pid {first.pid})" in second.stderr
        else:
            time.sleep(2)  # a few iterations
        first.send_signal(signum)
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 128 + signum, stderr
    assert "1 interrupted (checkpoints kept), 1 not started" in stderr
    assert processes_using(out) == []  # no orphan keeps training
    assert (out / "SimpleDoorKey__ppo__1/checkpoints/latest.pt").exists()
    assert not (out / "SimpleDoorKey__ppo__2").exists()  # nothing started after the signal
    if signum == signal.SIGINT:
        return
    plan = sweep_here(capsys, *args, "--dry-run", out=out)
    assert plan.returncode == 0, plan.stderr
    assert "SimpleDoorKey__ppo__1: resume" in plan.stdout and "SimpleDoorKey__ppo__2: fresh" in plan.stdout


def test_runs_of_a_killed_sweep_keep_the_lock(tmp_path, capsys):
    out = tmp_path / "runs"
    # every run inherits the lock; here a long run of the teacher alone, the quickest kind to start
    args = ["--methods", "teacher:rules", "--tasks", "SimpleDoorKey", "--seeds", "1", "--teacher-episodes", "100000000"]
    first = sweep(*args, out=out, wait=False)
    try:
        # the sweep and its run (which holds the lock from its start: no need to wait for it to get going)
        wait_for(lambda: len(processes_using(out)) == 2)
        first.kill()  # SIGKILL: the sweep cannot stop its run, which goes on
        first.communicate(timeout=60)
        assert len(processes_using(out)) == 1  # the orphaned run
        second = sweep_here(capsys, *args, "--teacher-episodes", "2", out=out)  # (NO_HANG for the teacher)
        assert second.returncode == 2 and "or one of its runs is still using" in second.stderr
        assert not (out / "SimpleDoorKey__teacher-rules__1/summary.json").exists()
    finally:
        for pid in processes_using(out):
            os.killpg(pid, signal.SIGKILL)


# -- what counts as done --------------------------------------------------------------------------

def test_what_a_run_measures_is_every_setting_but_those_a_resumed_run_may_change_less_the_evaluations():
    """One list (training.RESUME_FREE) says which settings a resumed run may change; of those, the sweep compares
    the evaluation's only: they change the summary's figures, not the training."""
    args = cli.Args(methods=["ppo"], tasks=["SimpleDoorKey"], seeds=[1], total_timesteps=128, extra=EXTRA, out="runs")
    expected = job.expected_configuration(job.Run("SimpleDoorKey", "ppo", 1), args)
    assert set(expected) & RESUME_FREE == {"eval_episodes", "eval_seed", "eval_envs", "eval_points"}
    assert {"total_timesteps", "seed", "num_envs", "env_id"} <= set(expected) and expected["eval_episodes"] == 2


@pytest.mark.xdist_group("finished_sweep")  # one finished sweep for the tests that use it
def test_only_a_readable_summary_of_the_same_configuration_is_done(tmp_path, capsys, finished_sweep):
    out = tmp_path / "runs"
    shutil.copytree(finished_sweep, out)  # done: plain PPO and the rules teacher on seed 1 (and seed 2)
    args = cli.Args(**{**FINISHED, "seeds": [1]}, out=str(out))
    summary_path = out / "SimpleDoorKey__ppo__1/summary.json"
    first = json.loads(summary_path.read_text())

    # a summary cut short (a crash while it was written) is not done: the run continues from its checkpoint
    summary_path.write_text(summary_path.read_text()[:200])
    with pytest.raises(SystemExit, match=f"cannot read {summary_path} \\(not valid JSON"):
        report.main(report.Args(runs=[str(out)], out=str(tmp_path / "report")))
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "1 already done, 1 to go (1 continuing from a checkpoint)" in capsys.readouterr().out
    again = json.loads(summary_path.read_text())
    assert again["frames"] == 128 and again["learning_curve"] == first["learning_curve"]

    # another budget or other extra arguments: the sweep stops before running anything, naming the difference
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.name != ".sweep.lock"}
    for changes, difference in (({"total_timesteps": 256}, "total_timesteps 128 (asked: 256)"),
                                ({"extra": EXTRA + " --seed 9"}, "seed 1 (asked: 9)"),
                                ({"extra": EXTRA.replace("--eval-episodes 2", "--eval-episodes 3")},
                                 "eval_episodes 2 (asked: 3)"),
                                ({"teacher_episodes": 3}, "eval_episodes 2 (asked: 3)")):
        assert cli.main(cli.Args(**{**vars(args), **changes})) == 2
        error = capsys.readouterr().err
        assert "made with another configuration" in error and difference in error, error
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.name != ".sweep.lock"} == before

    # asked to, it deletes the mismatching runs and redoes them (here the teacher's, which runs the quickest);
    # the others stay as they are
    (out / "SimpleDoorKey__teacher-rules__1/stale.txt").write_text("left by the mismatching run")
    assert cli.main(cli.Args(**{**vars(args), "teacher_episodes": 3, "redo_mismatched": True})) == 0
    assert "SimpleDoorKey__teacher-rules__1: redone" in capsys.readouterr().out
    assert json.loads((out / "SimpleDoorKey__teacher-rules__1/summary.json").read_text())["eval_episodes"] == 3
    assert not (out / "SimpleDoorKey__teacher-rules__1/stale.txt").exists()
    assert json.loads(summary_path.read_text()) == again


@pytest.mark.xdist_group("finished_sweep")
def test_sweep_is_resumable_and_reported(tmp_path, capsys, finished_sweep):  # (from test_benchmarks.py)
    args = cli.Args(**FINISHED, out=str(finished_sweep))
    summaries = sorted(finished_sweep.glob("*/summary.json"))
    assert [path.parent.name for path in summaries] == [
        "SimpleDoorKey__ppo__1", "SimpleDoorKey__ppo__2", "SimpleDoorKey__teacher-rules__1",
        "SimpleDoorKey__teacher-rules__2"]
    assert json.loads(summaries[0].read_text())["frames"] == 128
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "4 already done, 0 to go" in capsys.readouterr().out

    rows = report.main(report.Args(runs=[str(finished_sweep)], out=str(tmp_path / "out"), name="R"))
    by_method = {row["method"]: row for row in rows}
    assert by_method["teacher:rules"]["final_success_mean"] == 1.0 and by_method["teacher:rules"]["seeds"] == 2
    assert by_method["ppo"]["seeds"] == 2 and by_method["ppo"]["sps_median"] > 0
    text = (tmp_path / "out/R.md").read_text()
    assert "| SimpleDoorKey | teacher:rules | 2 | 1.00 (1.00-1.00) | 1.00 | 1.00 |" in text and "r_curves.png" in text
    assert (tmp_path / "out/r_curves.png").stat().st_size > 1000


def test_atomic_writes_leave_the_old_file_on_failure(tmp_path):
    path = tmp_path / "summary.json"
    write_text(path, '{"old": 1}')
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text('{"half')
        raise RuntimeError("killed while writing")
    assert json.loads(path.read_text()) == {"old": 1} and list(tmp_path.iterdir()) == [path]


@pytest.mark.xdist_group("finished_sweep")
def test_the_report_draws_the_deployed_students_curve(tmp_path, finished_sweep):
    summaries = [json.loads(path.read_text()) for path in sorted(finished_sweep.glob("*__ppo__*/summary.json"))]
    for summary in summaries:  # the final greedy evaluation closes each run's evaluation curve
        assert summary["eval_curve"]["frames"][-1] == summary["frames"]
        assert summary["eval_curve"]["success_rate"][-1] == summary["eval_success_rate"]
    groups = report.load([str(finished_sweep)])
    report.curves_plot(groups, tmp_path / "eval.png")
    assert (tmp_path / "eval.png").stat().st_size > 1000
    assert report._eval_curve(summaries[0]) == ([0.0, 128], [0.0, summaries[0]["eval_success_rate"]])


def test_llm4teach_runs_the_papers_loss_and_schedule(tmp_path, capsys):
    args = cli.Args(methods=["llm4teach:recorded"], tasks=["SimpleDoorKey"], seeds=[3], total_timesteps=384,
                    extra=EXTRA, out=str(tmp_path / "runs"))
    expected = job.expected_configuration(job.Run("SimpleDoorKey", "llm4teach:recorded", 3), args)
    assert {key: expected[key] for key in ("exp_name", "schedule", "distill_from", "greedy_fraction", "lambda_start",
                                           "lambda_decay", "lambda_floor", "teacher_off_iteration", "planner",
                                           "ent_coef")} == {
        "exp_name": "llm4teach", "schedule": "reference", "distill_from": "on-policy", "greedy_fraction": 0.0,
        "lambda_start": 10.0, "lambda_decay": 0.005, "lambda_floor": 0.1, "teacher_off_iteration": 1500,
        "planner": "recorded", "ent_coef": 0.01}  # ppo.py's PPO settings (ppo_teacher.py's own bonus is 0)
    assert cli.main(args) == 0
    summary = json.loads((tmp_path / "runs/SimpleDoorKey__llm4teach-recorded__3/summary.json").read_text())
    assert summary["learning_curve"]["lambda"] == pytest.approx([10.0, 9.995, 9.99])  # 0.005 per update
    assert report.method_label(summary) == "llm4teach:recorded"
    assert cli.main(args) == 0 and "1 already done, 0 to go" in capsys.readouterr().out


@pytest.mark.xdist_group("finished_sweep")
def test_the_report_rewrites_the_readmes_results_table(tmp_path, finished_sweep):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{report.README_START}\nold table\n{report.README_END}\n\nAfter.\n")
    report.main(report.Args(runs=[str(finished_sweep)], out=str(tmp_path / "results"), name="R", readme=str(readme)))
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# Title") and text.endswith("After.\n")
    assert "| method | SimpleDoorKey |" in text and "Full report: [results/R.md](results/R.md)" in text
    assert "| `teacher:rules` | 1.00 / 1.00 (2 seeds) |" in text  # greedy IQM / sampled; fewer than 5 seeds said
    readme.write_text("no block\n")
    with pytest.raises(SystemExit, match="no results block"):
        report.main(report.Args(runs=[str(finished_sweep)], out=str(tmp_path / "results"), name="R", readme=str(readme)))
