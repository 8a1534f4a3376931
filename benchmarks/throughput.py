"""Training throughput (env steps per second) of algorithms/ppo.py and algorithms/ppo_teacher.py.

    .venv/bin/python -m benchmarks.throughput                      # 1 core (sync) and 2 cores (async), here
    .venv/bin/python -m benchmarks.throughput --configs ppo:1 ppo_teacher:1 ppo:16 ppo_teacher:16 \\
        --name device_scaling --out "$OUT"                          # see benchmarks/device_scaling.sh

A config `script:cores` runs the script pinned to `cores` CPUs (the first ones this process may use):
with one core the sub-envs step in the main process (SyncVectorEnv), with k cores --async-envs
spreads them over k worker processes (with a planner that costs no LLM call the teacher runs there). Configs
`envs:<cores>` and `envs_teacher:<cores>` time the vector env alone (random actions, no learner),
without and with the teacher (teacher_wrappers.make_teacher_vector_env), to show how the env side scales. The
configs run in turn, `--repeats` times over, so that every config sees the same machine load; each
run is a fresh process with OMP_NUM_THREADS=1 (one thread for the learner). Recorded per run: the
script's own training SPS (summary.json: frames / training wall time) and the whole process's wall
time (start-up and final evaluation included). Writes <out>/<name>.json and <out>/<name>.md.
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
    from teacher_wrappers.vector import make_vector_env
    from teacher_wrappers.wrapper import make_teacher_vector_env

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


def command(script: str, cores: int, args: argparse.Namespace, run_name: str) -> list[str]:
    if script.startswith("envs"):
        planner = args.planner if script == "envs_teacher" else ""
        return [sys.executable, "-m", "benchmarks.throughput", "--child", planner, "--env-id", args.env_id,
                "--frames", str(args.frames), "--num-envs", str(args.num_envs)] + (["--async"] if cores > 1 else [])
    cmd = [sys.executable, str(ROOT / "algorithms" / f"{script}.py"), "--env-id", args.env_id,
           "--total-timesteps", str(args.frames), "--num-envs", str(args.num_envs), "--eval-episodes",
           str(args.eval_episodes), "--no-progress", "--seed", "1", "--run-name", run_name]
    if script == "ppo_teacher":
        cmd += ["--planner", args.planner]
    if cores > 1:
        cmd.append("--async-envs")
    return cmd + args.extra


def run_one(script: str, cores: int, args: argparse.Namespace, workdir: Path, index: int) -> dict:
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    run_name = f"{script}-{cores}-{index}"
    cmd = command(script, cores, args, run_name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # this checkout's library
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT if script.startswith("envs") else workdir, env=env, capture_output=True,
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
    return {**extra, "script": script, "cores": cores, "cpus": cpus, "async": cores > 1, "sps": summary["sps"],
            "frames": summary["frames"], "train_wall_seconds": summary["wall_seconds"],
            "process_wall_seconds": process_wall,
            "command": f"OMP_NUM_THREADS=1 taskset -c {','.join(map(str, cpus))} "
                       + shlex.join(["python"] + [str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c
                                                  for c in cmd[1:]])}


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for script, cores in dict.fromkeys((run["script"], run["cores"]) for run in runs):
        mine = [run for run in runs if run["script"] == script and run["cores"] == cores]
        rows.append({"script": script, "cores": cores, "runs": len(mine),
                     "sps": statistics.median(run["sps"] for run in mine),
                     "sps_all": [round(run["sps"]) for run in mine],
                     "process_over_train": statistics.median(run["process_wall_seconds"] / run["train_wall_seconds"]
                                                             for run in mine)})
        if "cpu_bound_sps" in mine[0]:
            rows[-1].update({key: statistics.median(run[key] for run in mine) for key in
                             ("cpu_bound_sps", "main_cpu_us_per_frame", "workers_cpu_us_per_frame")})
    for row in rows:
        one_core = next((r for r in rows if r["script"] == row["script"] and r["cores"] == 1), None)
        row["speedup_vs_1_core"] = row["sps"] / one_core["sps"] if one_core else None
        ppo = next((r for r in rows if r["script"] == "ppo" and r["cores"] == row["cores"]), None)
        row["vs_ppo_same_cores"] = row["sps"] / ppo["sps"] if ppo and row["script"] == "ppo_teacher" else None
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Training throughput: {result['env_id']}, {result['frames']:,} frames, {result['num_envs']} sub-envs",
             "", "| script | cores | SPS (median) | runs' SPS | vs 1 core | vs ppo, same cores | process / training wall |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["summary"]:
        speedup = f"{row['speedup_vs_1_core']:.2f}x" if row["speedup_vs_1_core"] else "-"
        vs_ppo = f"{row['vs_ppo_same_cores']:.2f}x" if row["vs_ppo_same_cores"] else "-"
        lines.append(f"| {row['script']} | {row['cores']}{' (async)' if row['cores'] > 1 else ' (sync)'} | "
                     f"{row['sps']:,.0f} | {row['sps_all']} | {speedup} | {vs_ppo} | {row['process_over_train']:.2f} |")
    cpu_rows = [row for row in result["summary"] if "cpu_bound_sps" in row]
    if cpu_rows:
        lines += ["", "CPU time per frame (load-independent): the main process's is serial, the workers' is shared by "
                  "the worker processes; `CPU-bound SPS` = 1e6 / (main + workers / number of workers) is what those "
                  "times allow on free cores, and its ratio to the 1-core figure the speed-up they allow.", "",
                  "| config | cores | main us/frame | workers us/frame | CPU-bound SPS | vs 1 core |", "| --- | --- | --- | --- | --- | --- |"]
        for row in cpu_rows:
            one = next((r for r in cpu_rows if r["script"] == row["script"] and r["cores"] == 1), None)
            ratio = f"{row['cpu_bound_sps'] / one['cpu_bound_sps']:.2f}x" if one else "-"
            lines.append(f"| {row['script']} | {row['cores']} | {row['main_cpu_us_per_frame']:.1f} | "
                         f"{row['workers_cpu_us_per_frame']:.1f} | {row['cpu_bound_sps']:,.0f} | {ratio} |")
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
        for repeat in range(args.repeats):
            for index, (script, cores) in enumerate(args.configs):
                run = run_one(script, cores, args, Path(workdir), repeat * len(args.configs) + index)
                print(f"{script} on {cores} core(s): {run['sps']:,.0f} SPS, process {run['process_wall_seconds']:.1f} s "
                      f"/ training {run['train_wall_seconds']:.1f} s", flush=True)
                runs.append(run)
    result = {"command": "python -m benchmarks.throughput " + shlex.join(sys.argv[1:]), "env_id": args.env_id,
              "planner": args.planner, "frames": args.frames, "num_envs": args.num_envs,
              "eval_episodes": args.eval_episodes, "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
              "runs": runs, "summary": summarise(runs)}
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(result))
    print(f"wrote {args.out / (args.name + '.json')} and .md")


if __name__ == "__main__":
    main()
