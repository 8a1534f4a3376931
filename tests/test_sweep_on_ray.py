"""The sweep on a Ray cluster, as a user runs it: `ray start` twice, then `python -m benchmarks.run --backend ray`.

One cluster for the module: a head node and a second node, each `ray start --block` in its own process group
with explicit ports and its own temporary directory, started without this checkout on their PYTHONPATH (the code
reaches the workers through the sweep's runtime environment only). At the end exactly these nodes are stopped.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_sweep import EXTRA, processes_using, sweep, wait_for

pytest.importorskip("ray", reason="the Ray backend needs Ray: pip install 'teacher-wrappers[ray]'")

from benchmarks import ray_backend  # noqa: E402  (after the skip: it is only used with Ray)

START_SECONDS = 180  # for both nodes to come up on a busy 2-core machine


@dataclass
class Cluster:
    address: str
    folder: Path


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports that are free now."""
    while True:
        first = random.randrange(20_000, 60_000 - count)
        sockets = []
        try:
            for port in range(first, first + count):
                sockets.append(socket.socket())
                sockets[-1].bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


def node_ports() -> list[str]:
    port = free_ports(26)
    return ["--node-manager-port", str(port), "--object-manager-port", str(port + 1),
            "--runtime-env-agent-port", str(port + 2), "--dashboard-agent-grpc-port", str(port + 3),
            "--dashboard-agent-listen-port", str(port + 4), "--metrics-export-port", str(port + 5),
            "--min-worker-port", str(port + 6), "--max-worker-port", str(port + 25)]


@pytest.fixture(scope="session")
def ray_cluster():
    folder = Path(tempfile.mkdtemp(prefix="tw-ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "PYTHONPATH")}
    env["OMP_NUM_THREADS"] = "1"
    nodes: list[subprocess.Popen] = []

    def start(name: str, *flags: str) -> None:
        with (folder / f"{name}.log").open("w") as log:
            nodes.append(subprocess.Popen(
                [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--num-cpus", "1",
                 "--object-store-memory", str(100 * 2**20), "--disable-usage-stats", "--include-log-monitor", "false",
                 "--temp-dir", str(folder / name), *node_ports(), *flags],
                stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env, start_new_session=True))

    def started(name: str, proc: subprocess.Popen) -> bool:
        if proc.poll() is not None:
            pytest.fail(f"ray start ({name}) exited {proc.returncode}: {(folder / f'{name}.log').read_text()[-3000:]}")
        return "Ray runtime started" in (folder / f"{name}.log").read_text()

    try:
        port = free_ports(3)
        start("head", "--head", "--port", str(port), "--ray-client-server-port", str(port + 1),
              "--dashboard-port", str(port + 2), "--include-dashboard", "false")
        start("node", "--address", f"127.0.0.1:{port}")
        wait_for(lambda: all(started(name, proc) for name, proc in zip(("head", "node"), nodes)), START_SECONDS)
        yield Cluster(f"127.0.0.1:{port}", folder)
    finally:
        for proc in reversed(nodes):  # `ray start --block` stops the processes it started when told to
            proc.terminate()
        for proc in reversed(nodes):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of that node is left (its process group)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def ray_sweep(cluster: Cluster, *args, out: Path, wait=True):
    return sweep("--backend", "ray", "--ray-address", cluster.address, *args, out=out, wait=wait)


PROGRESS = re.compile(r"Ray: 2 nodes, 2 CPUs for runs, .*|\d+ runs, \d+ already done, \d+ to go.*, on Ray"
                      r"|\[\d+/\d+\] SimpleDoorKey__.*")


def test_the_readme_command_runs_every_run_on_a_two_node_cluster(ray_cluster, tmp_path):
    out = tmp_path / "runs"
    args = ["--methods", "ppo_teacher:recorded", "teacher:recorded", "--tasks", "SimpleDoorKey", "--seeds", "21", "22",
            "--total-timesteps", "128", "--teacher-episodes", "2", f"--extra={EXTRA}"]
    first = ray_sweep(ray_cluster, *args, out=out)
    assert first.returncode == 0, first.stdout + first.stderr
    # only the sweep's progress: Ray's start-up messages stay in its logs
    assert all(PROGRESS.fullmatch(line) for line in first.stdout.splitlines()), first.stdout
    assert first.stderr == "" and len(first.stdout.splitlines()) == 6, first.stdout + first.stderr
    for seed in (21, 22):
        trained = json.loads((out / f"SimpleDoorKey__ppo_teacher-recorded__{seed}/summary.json").read_text())
        alone = json.loads((out / f"SimpleDoorKey__teacher-recorded__{seed}/summary.json").read_text())
        assert trained["frames"] == 128 and trained["args"]["seed"] == seed and trained["planner"] == "recorded"
        assert alone["eval_episodes"] == 2 and alone["eval_success_rate"] > 0

    again = ray_sweep(ray_cluster, *args, out=out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["4 runs, 4 already done, 0 to go, on Ray"]


def test_ctrl_c_stops_the_ray_runs_and_the_next_sweep_continues_them(ray_cluster, tmp_path):
    out = tmp_path / "runs"
    # two runs, one on each node, and a third waiting for a CPU
    args = ["--methods", "ppo", "--tasks", "SimpleDoorKey", "--seeds", "1", "2", "3", "--total-timesteps", "4096",
            f"--extra={EXTRA}"]
    first = ray_sweep(ray_cluster, *args, out=out, wait=False)
    try:
        wait_for(lambda: all(list((out / f"SimpleDoorKey__ppo__{seed}").glob("events.*")) for seed in (1, 2)))
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, stderr
    assert "2 interrupted (checkpoints kept), 1 not started" in stderr
    assert processes_using(out) == []  # the runs stopped, on both nodes
    for seed in (1, 2):
        assert (out / f"SimpleDoorKey__ppo__{seed}/checkpoints/latest.pt").exists()
    assert not (out / "SimpleDoorKey__ppo__3").exists()  # the waiting run never started

    second = ray_sweep(ray_cluster, *args, out=out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 runs, 0 already done, 3 to go (2 continuing from a checkpoint), on Ray" in second.stdout
    for seed in (1, 2, 3):
        assert json.loads((out / f"SimpleDoorKey__ppo__{seed}/summary.json").read_text())["frames"] == 4096
    log = (out / "SimpleDoorKey__ppo__1.log").read_text()
    assert "interrupted: checkpoint" in log and "summary in" in log  # one log: the first part, then the rest


def test_a_node_that_cannot_write_to_out_or_sees_another_folder_gets_one_line(tmp_path):
    lock = tmp_path / ".sweep.lock"
    lock.write_text("123\ntoken\n")
    assert ray_backend.out_problem(str(lock), "token") is None
    for path, token, problem in ((lock, "another", f"{tmp_path} here is not the folder the sweep writes to"),
                                 (tmp_path / "missing/.sweep.lock", "token", f"cannot write to {tmp_path}/missing")):
        line = ray_backend.out_problem(str(path), token)
        assert line.startswith(problem) and "\n" not in line and "every Ray node can write" in line, line
