"""The sweep on a Ray cluster, as a user runs it: `ray start`, then `python -m benchmarks.run --backend ray`.

One cluster for the module, each node `ray start --block` in its own process group with explicit ports and its
own temporary directory, started without this checkout on their PYTHONPATH (the code reaches the workers through
the sweep's runtime environment only). At the end exactly these nodes are stopped. Token authentication is off for
the cluster and the sweeps alike, whatever ~/.ray holds.

By default the cluster is the head node alone (one CPU) and one test runs a sweep on it. A node takes a minute or
more to start on a busy 2-core machine, so the tests that need a second node are opt-in (TW_RAY_TESTS=1, see
docs/sweeps-on-ray.md): one run on each node, Ctrl-C and the next sweep, and a node without the shared storage.
Where it may (root, `unshare`), that second node has its own mount namespace in which one folder is an empty tmpfs.
"""

import importlib.util
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
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_sweep import EXTRA, processes_using, sweep, sweep_here, wait_for

# the Ray backend imports Ray only where it is called: not in this process
from benchmarks.sweep import ray_backend

pytestmark = [pytest.mark.xdist_group("sweep_on_ray"),  # its module fixtures stay in one test worker
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="the Ray backend needs Ray: pip install 'teacher-wrappers[ray]'")]

START_SECONDS = 180  # for a node to come up on a busy 2-core machine
TWO_NODES = pytest.mark.skipif(not os.environ.get("TW_RAY_TESTS"), reason=(
    "needs a second Ray node (1-3 minutes to start on a 2-core machine): set TW_RAY_TESTS=1 to run it"))
# Ray turns token authentication on where ~/.ray/auth_token exists (any local ray.init() makes one): the same
# setting for the nodes and the sweeps, whatever that file says.
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


@dataclass
class Cluster:
    address: str
    folder: Path
    unshared: Path | None  # a folder the second node does not share (an empty tmpfs there); None where it cannot


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


class Nodes:
    """`ray start --block` processes, each in its own process group, stopped (with whatever they started) on `stop`."""

    def __init__(self, folder: Path):
        self.folder, self.procs = folder, []
        self.env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "PYTHONPATH")}
        self.env.update(RAY_ENV, OMP_NUM_THREADS="1")

    def start(self, name: str, *flags: str, wrapper: tuple[str, ...] = ()) -> subprocess.Popen:
        """Starts a node and waits for it; a second try where the first dies starting (Ray gives its agents
        15 s to come up, which a loaded machine can miss)."""
        for attempt in (1, 2):
            log_path = self.folder / f"{name}-{attempt}.log"
            with log_path.open("w") as log:
                proc = subprocess.Popen(
                    [*wrapper, sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--num-cpus", "1",
                     "--object-store-memory", str(100 * 2**20), "--disable-usage-stats", "--include-log-monitor",
                     "false", "--temp-dir", str(self.folder / name), *node_ports(), *flags],
                    stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, env=self.env, start_new_session=True)
            self.procs.append(proc)
            wait_for(lambda path=log_path, proc=proc: proc.poll() is not None or "Ray runtime started" in path.read_text(),
                     START_SECONDS)
            if proc.poll() is None:
                return proc
        pytest.fail(f"ray start ({name}) exited {proc.returncode}: {log_path.read_text()[-3000:]}")

    def stop(self, procs: list[subprocess.Popen]) -> None:
        for proc in reversed(procs):  # `ray start --block` stops the processes it started when told to
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of that node is left (its process group)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture(scope="module")
def ray_head():
    """A cluster of one node: the head, with one CPU (stopped after this module: idle nodes cost CPU too)."""
    folder = Path(tempfile.mkdtemp(prefix="tw-ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    nodes = Nodes(folder)
    try:
        port = free_ports(3)
        nodes.start("head", "--head", "--port", str(port), "--ray-client-server-port", str(port + 1),
                    "--dashboard-port", str(port + 2), "--include-dashboard", "false")
        yield Cluster(f"127.0.0.1:{port}", folder, None), nodes
    finally:
        nodes.stop(nodes.procs)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster(ray_head):
    """The head and a second node (started once the head is up: a node joining a head that is still starting
    up is turned away)."""
    head, nodes = ray_head
    unshared = head.folder / "unshared"
    unshared.mkdir()
    unshare = shutil.which("unshare")
    if not unshare or subprocess.run([unshare, "--mount", "true"], capture_output=True, check=False).returncode:
        unshare = unshared = None
    wrapper = (unshare, "--mount", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs tmpfs "$0" && exec "$@"', str(unshared)) if unshare else ()
    node = nodes.start("node", "--address", head.address, wrapper=wrapper)
    try:
        yield Cluster(head.address, head.folder, unshared)
    finally:
        nodes.stop([node])


def ray_sweep(cluster: Cluster, *args, out: Path, wait=True):
    return sweep("--backend", "ray", "--ray-address", cluster.address, *args, out=out, wait=wait, env=RAY_ENV)


PROGRESS = re.compile(r"Ray: (?P<nodes>\d) nodes, (?P=nodes) CPUs for runs, .*"
                      r"|\d+ runs, \d+ already done, \d+ to go.*, on Ray|\[\d+/\d+\] SimpleDoorKey__.*")


def test_a_sweep_runs_on_a_ray_node_and_a_done_sweep_needs_no_cluster(ray_head, tmp_path, capsys):
    """The default test of the Ray backend: the sweep ships the code to the node, runs there and reads the result
    back; run again, it finds the run done without connecting."""
    head, _ = ray_head
    out = tmp_path / "runs"
    args = ["--methods", "teacher:rules", "--tasks", "SimpleDoorKey", "--seeds", "3", "--teacher-episodes", "2"]
    first = ray_sweep(head, *args, out=out)
    assert first.returncode == 0, first.stdout + first.stderr
    # only the sweep's progress: Ray's start-up messages stay in its logs
    assert all(PROGRESS.fullmatch(line) for line in first.stdout.splitlines()), first.stdout
    assert first.stderr == "" and len(first.stdout.splitlines()) == 3, first.stdout + first.stderr
    alone = json.loads((out / "SimpleDoorKey__teacher-rules__3/summary.json").read_text())
    assert first.stdout.startswith("Ray: 1 nodes, 1 CPUs for runs, this checkout shipped to them")
    assert first.stdout.splitlines()[-1] == "[1/1] SimpleDoorKey__teacher-rules__3: success 1.00"
    assert alone["eval_episodes"] == 2 and alone["eval_success_rate"] == 1.0

    again = sweep_here(capsys, "--backend", "ray", "--ray-address", head.address, *args, out=out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["1 runs, 1 already done, 0 to go, on Ray"]


@TWO_NODES
def test_the_readme_command_runs_every_run_on_a_two_node_cluster(ray_cluster, tmp_path):
    out = tmp_path / "runs"
    args = ["--methods", "ppo_teacher:recorded", "teacher:recorded", "--tasks", "SimpleDoorKey", "--seeds", "21",
            "--total-timesteps", "128", "--teacher-episodes", "2", f"--extra={EXTRA}"]  # a run on each node
    first = ray_sweep(ray_cluster, *args, out=out)
    assert first.returncode == 0, first.stdout + first.stderr
    # only the sweep's progress: Ray's start-up messages stay in its logs
    assert all(PROGRESS.fullmatch(line) for line in first.stdout.splitlines()), first.stdout
    assert first.stderr == "" and len(first.stdout.splitlines()) == 4, first.stdout + first.stderr
    assert first.stdout.startswith("Ray: 2 nodes, 2 CPUs for runs"), first.stdout
    trained = json.loads((out / "SimpleDoorKey__ppo_teacher-recorded__21/summary.json").read_text())
    alone = json.loads((out / "SimpleDoorKey__teacher-recorded__21/summary.json").read_text())
    assert trained["frames"] == 128 and trained["args"]["seed"] == 21 and trained["args"]["planner"] == "recorded"
    assert alone["eval_episodes"] == 2 and alone["eval_success_rate"] > 0

    again = ray_sweep(ray_cluster, *args, out=out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["2 runs, 2 already done, 0 to go, on Ray"]


def interrupt(cluster: Cluster, args: list[str], out: Path, events: int) -> tuple[str, str]:
    """Starts the sweep, sends it SIGINT once seeds 1 and 2 write their `events`-th TensorBoard file (training),
    and checks that it stopped both runs on both nodes, exit 130. Returns (stdout, stderr)."""
    proc = ray_sweep(cluster, *args, out=out, wait=False)
    try:
        wait_for(lambda: all(len(list((out / f"SimpleDoorKey__ppo__{seed}").glob("events.*"))) == events
                             for seed in (1, 2)), 240)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert processes_using(out) == []  # no run goes on, on either node
    return stdout, stderr


@TWO_NODES
def test_ctrl_c_stops_the_ray_runs_and_the_next_sweep_continues_them(ray_cluster, tmp_path):
    out = tmp_path / "runs"
    args = ["--methods", "ppo", "--tasks", "SimpleDoorKey", "--total-timesteps", "100000000", f"--extra={EXTRA}"]
    _, stderr = interrupt(ray_cluster, [*args, "--seeds", "1", "2", "3"], out, events=1)  # seed 3 waits for a CPU
    assert "2 interrupted (checkpoints kept), 1 not started" in stderr
    assert not (out / "SimpleDoorKey__ppo__3").exists()  # the waiting run never started
    checkpoints = [out / f"SimpleDoorKey__ppo__{seed}/checkpoints/latest.pt" for seed in (1, 2)]
    before = [checkpoint_step(path) for path in checkpoints]

    # the next sweep continues both from their checkpoints (in the same folder: the first part's events stay)
    stdout, stderr = interrupt(ray_cluster, [*args, "--seeds", "1", "2"], out, events=2)
    assert "2 runs, 0 already done, 2 to go (2 continuing from a checkpoint), on Ray" in stdout
    assert "2 interrupted (checkpoints kept), 0 not started" in stderr
    assert all(checkpoint_step(path) > step for path, step in zip(checkpoints, before))
    for seed in (1, 2):
        assert (out / f"SimpleDoorKey__ppo__{seed}.log").read_text().count("interrupted: checkpoint") == 2


def checkpoint_step(path: Path) -> int:
    import torch

    return torch.load(path, weights_only=False, map_location="cpu")["global_step"]


@TWO_NODES
def test_a_node_that_cannot_write_to_out_stops_the_sweep_before_its_first_run(ray_cluster):
    if ray_cluster.unshared is None:
        pytest.skip("needs `unshare --mount` (root) to give the second node a folder of its own")
    out = ray_cluster.unshared / "runs"  # here and on the head, not on the second node
    proc = ray_sweep(ray_cluster, "--methods", "teacher:rules", "--tasks", "SimpleDoorKey", "--seeds", "1", "2",
                     "--teacher-episodes", "2", out=out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: Ray node ") and line.endswith(
        f"cannot write to {out} (No such file or directory): --out must be a folder every Ray node can write, "
        "at the same path (shared storage)"), line
    assert not list(out.glob("*__*"))  # nothing ran, not even on the head, which can write there


def test_a_node_that_cannot_write_to_out_or_sees_another_folder_gets_one_line(tmp_path):
    lock = tmp_path / ".sweep.lock"
    lock.write_text("123\ntoken\n")
    assert ray_backend.out_problem(str(lock), "token") is None
    for path, token, problem in ((lock, "another", f"{tmp_path} here is not the folder the sweep writes to"),
                                 (tmp_path / "missing/.sweep.lock", "token", f"cannot write to {tmp_path}/missing")):
        line = ray_backend.out_problem(str(path), token)
        assert line.startswith(problem) and "\n" not in line and "every Ray node can write" in line, line
