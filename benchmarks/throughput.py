"""Training throughput (env steps per second) of algorithms/ppo.py and algorithms/ppo_teacher.py.

    .venv/bin/python -m benchmarks.throughput                      # 1 core (sync) and 2 cores (async), here
    .venv/bin/python -m benchmarks.throughput --configs ppo:1 ppo_teacher:1 ppo:16 ppo_teacher:16 \\
        --name scaling --out "$OUT"                                 # see benchmarks/large_machine/scaling.sh

A config `script:cores` runs the script pinned to `cores` CPUs (the first ones this process may use):
with one core the sub-envs step in the main process (SyncVectorEnv), with k cores --async-envs
spreads them over k worker processes (with a planner that costs no LLM call the teacher runs there). Configs
`envs:<cores>` and `envs_teacher:<cores>` time the vector env alone (random actions, no learner),
without and with the teacher (teacher_wrappers.make_teacher_vector_env), to show how the env side scales. The
configs run in turn, `--repeats` times over, so that every config sees the same machine load; each
run is a fresh process with OMP_NUM_THREADS=1 (one thread for the learner). Recorded per run: the
script's own training SPS (summary.json: frames / training wall time) and the whole process's wall
time (start-up and final evaluation included). Writes <out>/<name>.json and <out>/<name>.md.

`--reference REV` runs every config a second time, alternately, on a pristine copy of the repository at git
revision REV (`git archive`), so that the table gives this checkout's speed-up over REV measured side by side.
`--overhead` also runs the wrapper-overhead suite (benchmarks/speed, pinned to the first core) into
<out>/<name>_overhead.json and .md. Every figure of the speed goals in one invocation:

    .venv/bin/python -m benchmarks.throughput --reference a071e96 --overhead --frames 30720 --eval-episodes 100 \
        --configs ppo:1 ppo_teacher:1 ppo:2 ppo_teacher:2 envs:1 envs:2 --name speed_goals
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


KINDS = ("ppo", "ppo_teacher", "envs", "envs_teacher")


def parse_config(text: str) -> tuple[str, int]:
    kind, _, cores = text.partition(":")
    if kind not in KINDS or not cores.isdigit() or int(cores) < 1:
        raise argparse.ArgumentTypeError(f"config {text!r}: expected <kind>:<cores>, kind one of {', '.join(KINDS)}")
    return kind, int(cores)


def envs_only(env_id: str, planner: str | None, frames: int, num_envs: int, asynchronous: bool) -> dict:
    """Steps/s of the vector env alone (uniformly random actions, no learner): `envs` / `envs_teacher` configs."""
    import gymnasium as gym
    import numpy as np

    import teacher_wrappers  # noqa: F401  (registers the tasks)
    from teacher_wrappers import make_teacher_vector_env
    from teacher_wrappers.grouped import make_vector_env

    fns = [lambda: gym.make(env_id)] * num_envs
    mode = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    if planner:
        envs = make_teacher_vector_env(fns, planner=planner, asynchronous=asynchronous, **mode)
    else:
        envs = make_vector_env(fns, asynchronous, **mode)
    import resource

    rng = np.random.default_rng(0)
    envs.reset(seed=list(range(num_envs)))
    steps = frames // num_envs
    grouped = hasattr(envs.unwrapped, "worker_cpu_times")
    workers_before = envs.unwrapped.worker_cpu_times() if grouped else [_children_cpu(resource)]
    start, main_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        envs.step(rng.integers(0, 7, size=num_envs))
    seconds, main_cpu = time.perf_counter() - start, time.process_time() - main_start
    workers_after = envs.unwrapped.worker_cpu_times() if grouped else None
    envs.close()  # joins Gymnasium's workers: their CPU time counts once they are reaped (start-up included)
    workers_after = workers_after or [_children_cpu(resource)]
    workers = getattr(envs.unwrapped, "groups", None) or ([[i] for i in range(num_envs)] if asynchronous else [])
    workers_cpu = sum(workers_after) - sum(workers_before)
    frames = steps * num_envs
    # Load-independent view: per frame, the main process's CPU time is serial; the workers' runs in
    # parallel over len(workers) processes. 1e6 / (main + workers / n) is the SPS those CPU times allow.
    main_us, workers_us = 1e6 * main_cpu / frames, 1e6 * workers_cpu / frames
    return {"sps": frames / seconds, "frames": frames, "wall_seconds": seconds, "workers": len(workers),
            "main_cpu_us_per_frame": main_us, "workers_cpu_us_per_frame": workers_us,
            "cpu_bound_sps": 1e6 / (main_us + workers_us / max(len(workers), 1))}


def _children_cpu(resource) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(script: str, cores: int, args: argparse.Namespace, run_name: str, root: Path = ROOT) -> list[str]:
    if script.startswith("envs"):
        planner = args.planner if script == "envs_teacher" else ""
        return [sys.executable, "-m", "benchmarks.throughput", "--child", planner, "--env-id", args.env_id,
                "--frames", str(args.frames), "--num-envs", str(args.num_envs)] + (["--async"] if cores > 1 else [])
    cmd = [sys.executable, str(root / "algorithms" / f"{script}.py"), "--env-id", args.env_id,
           "--total-timesteps", str(args.frames), "--num-envs", str(args.num_envs), "--eval-episodes",
           str(args.eval_episodes), "--no-progress", "--seed", "1", "--run-name", run_name]
    if script == "ppo_teacher":
        cmd += ["--planner", args.planner]
    if cores > 1:
        cmd.append("--async-envs")
    return cmd + args.extra


def run_one(script: str, cores: int, args: argparse.Namespace, workdir: Path, index: int, root: Path = ROOT,
            code: str = "this checkout") -> dict:
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    run_name = f"{script}-{cores}-{index}"
    cmd = command(script, cores, args, run_name, root)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}  # that checkout's library
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root if script.startswith("envs") else workdir, env=env, capture_output=True,
                          text=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    process_wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    if script.startswith("envs"):
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
    else:
        summary = json.loads((workdir / "runs" / run_name / "summary.json").read_text())
    extra = {key: summary[key] for key in ("main_cpu_us_per_frame", "workers_cpu_us_per_frame", "cpu_bound_sps",
                                           "workers") if key in summary}
    return {**extra, "code": code, "script": script, "cores": cores, "cpus": cpus, "async": cores > 1,
            "sps": summary["sps"],
            "frames": summary["frames"], "train_wall_seconds": summary["wall_seconds"],
            "process_wall_seconds": process_wall,
            "command": f"OMP_NUM_THREADS=1 taskset -c {','.join(map(str, cpus))} "
                       + shlex.join(["python"] + [str(Path(c).relative_to(root)) if c.startswith(str(root)) else c
                                                  for c in cmd[1:]])}


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for code, script, cores in dict.fromkeys((run.get("code", "this checkout"), run["script"], run["cores"])
                                             for run in runs):
        mine = [run for run in runs if run.get("code", "this checkout") == code and run["script"] == script
                and run["cores"] == cores]
        rows.append({"code": code, "script": script, "cores": cores, "runs": len(mine),
                     "sps": statistics.median(run["sps"] for run in mine),
                     "sps_all": [round(run["sps"]) for run in mine],
                     "process_over_train": statistics.median(run["process_wall_seconds"] / run["train_wall_seconds"]
                                                             for run in mine)})
        if "cpu_bound_sps" in mine[0]:
            rows[-1].update({key: statistics.median(run[key] for run in mine) for key in
                             ("cpu_bound_sps", "main_cpu_us_per_frame", "workers_cpu_us_per_frame")})
    for row in rows:
        same_code = [r for r in rows if r["code"] == row["code"]]
        one_core = next((r for r in same_code if r["script"] == row["script"] and r["cores"] == 1), None)
        row["speedup_vs_1_core"] = row["sps"] / one_core["sps"] if one_core else None
        ppo = next((r for r in same_code if r["script"] == "ppo" and r["cores"] == row["cores"]), None)
        row["vs_ppo_same_cores"] = row["sps"] / ppo["sps"] if ppo and row["script"] == "ppo_teacher" else None
        reference = next((r for r in rows if r["code"] != "this checkout" and r["script"] == row["script"]
                          and r["cores"] == row["cores"]), None)
        row["vs_reference"] = (row["sps"] / reference["sps"] if reference and row["code"] == "this checkout"
                               else None)
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Training throughput: {result['env_id']}, {result['frames']:,} frames, {result['num_envs']} sub-envs",
             "", "| code | script | cores | SPS (median) | runs' SPS | vs 1 core | vs ppo, same cores | vs reference "
             "| process / training wall |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def ratio(value):
        return f"{value:.2f}x" if value else "-"

    for row in result["summary"]:
        code = row.get("code", "this checkout")
        lines.append(f"| {code} | {row['script']} | {row['cores']}{' (async)' if row['cores'] > 1 else ' (sync)'} | "
                     f"{row['sps']:,.0f} | {row['sps_all']} | {ratio(row['speedup_vs_1_core'])} | "
                     f"{ratio(row['vs_ppo_same_cores'])} | {ratio(row.get('vs_reference'))} | "
                     f"{row['process_over_train']:.2f} |")
    cpu_rows = [row for row in result["summary"] if "cpu_bound_sps" in row]
    if cpu_rows:
        lines += ["", "CPU time per frame (load-independent): the main process's is serial, the workers' is shared by "
                  "the worker processes; `CPU-bound SPS` = 1e6 / (main + workers / number of workers) is what those "
                  "times allow on free cores, and its ratio to the 1-core figure the speed-up they allow.", "",
                  "| code | config | cores | main us/frame | workers us/frame | CPU-bound SPS | vs 1 core |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in cpu_rows:
            one = next((r for r in cpu_rows if r["script"] == row["script"] and r["cores"] == 1
                        and r.get("code") == row.get("code")), None)
            lines.append(f"| {row.get('code', 'this checkout')} | {row['script']} | {row['cores']} | "
                         f"{row['main_cpu_us_per_frame']:.1f} | {row['workers_cpu_us_per_frame']:.1f} | "
                         f"{row['cpu_bound_sps']:,.0f} | "
                         f"{ratio(one and row['cpu_bound_sps'] / one['cpu_bound_sps'])} |")
    lines += ["", f"Written by `{result['command']}` on {result['machine']} ({result['cpu_count']} CPUs; load average "
              f"{result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after).",
              "SPS is the script's own training figure (frames / training wall time); the last column is the whole "
              "process's wall time (start-up, teacher warm-up and final evaluation included) over the training time. "
              "Configs ran in turn, repeated, so ratios within this table share the machine's load.", "",
              "Each run's command:", ""]
    lines += [f"- `{run['command']}`" for run in result["runs"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=parse_config,
                        default=[("ppo", 1), ("ppo_teacher", 1), ("ppo", 2), ("ppo_teacher", 2)])
    parser.add_argument("--env-id", default="TeacherWrappers/SimpleDoorKey-v0")
    parser.add_argument("--planner", default="recorded")
    parser.add_argument("--frames", type=int, default=20480)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or RESULTS))
    parser.add_argument("--name", default="throughput")
    parser.add_argument("--reference", default=None, metavar="REV",
                        help="also run every config on the repository at this git revision, alternately")
    parser.add_argument("--overhead", action="store_true",
                        help="also run the wrapper-overhead suite (benchmarks/speed): <out>/<name>_overhead.*")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # an envs config's process: the planner
    parser.add_argument("--async", dest="asynchronous", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more arguments for both scripts")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(envs_only(args.env_id, args.child or None, args.frames, args.num_envs, args.asynchronous)))
        return
    args.extra = [a for a in args.extra if a != "--"]
    available = len(os.sched_getaffinity(0))
    if max(cores for _, cores in args.configs) > available:
        parser.error(f"a config asks for more cores than the {available} this process may use")
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as workdir:
        codes = [("this checkout", ROOT)]
        if args.reference:
            codes.append((f"reference {args.reference}", export_revision(args.reference, Path(workdir) / "reference")))
        for repeat in range(args.repeats):
            for index, (script, cores) in enumerate(args.configs):
                for number, (code, root) in enumerate(codes):
                    run = run_one(script, cores, args, Path(workdir), (repeat * len(args.configs) + index) * 2 + number,
                                  root, code)
                    print(f"{code}: {script} on {cores} core(s): {run['sps']:,.0f} SPS, process "
                          f"{run['process_wall_seconds']:.1f} s / training {run['train_wall_seconds']:.1f} s",
                          flush=True)
                    runs.append(run)
    result = {"command": "python -m benchmarks.throughput " + shlex.join(sys.argv[1:]), "env_id": args.env_id,
              "planner": args.planner, "frames": args.frames, "num_envs": args.num_envs,
              "eval_episodes": args.eval_episodes, "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
              "runs": runs, "summary": summarise(runs)}
    if args.reference:
        result["reference"] = args.reference
    from teacher_wrappers.training import write_text  # atomic; here only (the env-side children stay light)

    write_text(args.out / f"{args.name}.json", json.dumps(result, indent=1) + "\n")
    write_text(args.out / f"{args.name}.md", markdown(result))
    print(f"wrote {args.out / (args.name + '.json')} and .md")
    if args.overhead:  # the wrapper overhead, pinned to the first core (see benchmarks/speed/test_wrapper_overhead.py)
        first = sorted(os.sched_getaffinity(0))[0]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        subprocess.run(["taskset", "-c", str(first), sys.executable, "-m", "pytest", "benchmarks/speed", "-q",
                        "-n", "0", "-p", "no:cacheprovider", "--benchmark-enable",
                        "--benchmark-json", str(args.out / f"{args.name}_overhead.json")], cwd=ROOT, env=env,
                       check=True)
        overhead = args.out / f"{args.name}_overhead"
        subprocess.run([sys.executable, "-m", "benchmarks.speed.report", "--json", f"{overhead}.json",
                        "--out", f"{overhead}.md"], cwd=ROOT, env=env, check=True)


def export_revision(revision: str, folder: Path) -> Path:
    """A pristine copy of the repository at `revision` (its tracked files, as `git archive` gives them)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision], capture_output=True,
                             check=False)
    if archive.returncode != 0:
        raise SystemExit(f"error: cannot export revision {revision!r}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


if __name__ == "__main__":
    main()
