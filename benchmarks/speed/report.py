"""benchmarks/results/speed.md from the wrapper-overhead JSON of benchmarks/speed/test_wrapper_overhead.py.

    .venv/bin/python -m benchmarks.speed.report [--json benchmarks/results/speed.json]
        [--before benchmarks/results/speed_before.json] [--out benchmarks/results/speed.md]

`--before` adds the overheads of an earlier run (e.g. the code before a change) for comparison.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parents[1] / "results"
COMMAND = ("OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python -m pytest benchmarks/speed -n 0 --benchmark-enable "
           "--benchmark-json benchmarks/results/speed.json")
GOAL = 0.30


def overheads(path: Path) -> dict[tuple[str, str], dict]:
    data = json.loads(path.read_text())
    return {(b["extra_info"]["task"], b["extra_info"]["planner"]): b["extra_info"] for b in data["benchmarks"]
            if "overhead" in b.get("extra_info", {})}


def report(current: dict, before: dict | None, source: Path) -> str:
    tasks = list(dict.fromkeys(task for task, _ in current))
    planners = ["recorded", "rules"]
    lines = [f"# Wrapper overhead over the raw task step (goal: < {GOAL:.0%} on every task and planner)", "",
             ("Median over rounds of (wrapped CPU time / raw CPU time - 1); each round: a fresh (cold) teacher, "
              "5,000 uniformly random actions on the raw and the wrapped env in alternating chunks of 250."), ""]
    header = "| task | raw (us/step) | " + " | ".join(f"{p} (us/step, overhead)" for p in planners)
    header += " | raw before (us/step) | " + " | ".join(f"{p} before" for p in planners) + " |" if before else " |"
    lines += [header, "| --- " * (2 + len(planners) + ((1 + len(planners)) if before else 0)) + "|"]
    for task in tasks:
        raw = [current[(task, p)]["raw_us_per_step"] for p in planners if (task, p) in current]
        row = [task, f"{min(raw):.1f}"]
        for planner in planners:
            info = current.get((task, planner))
            if info is None:
                row.append("-")
                continue
            mark = "" if info["overhead"] < GOAL else " **over goal**"
            row.append(f"{info['wrapped_us_per_step']:.1f} ({info['overhead']:+.0%}){mark}")
        if before:
            raw_before = [before[(task, p)]["raw_us_per_step"] for p in planners if (task, p) in before]
            row.append(f"{min(raw_before):.1f}" if raw_before else "-")
            row += [f"{before[(task, p)]['wrapped_us_per_step']:.1f} ({before[(task, p)]['overhead']:+.0%})"
                    if (task, p) in before else "-" for p in planners]
        lines.append("| " + " | ".join(row) + " |")
    try:
        source = source.resolve().relative_to(RESULTS.parents[1])
    except ValueError:
        pass
    lines += ["", f"From `{source}`, written by `{COMMAND}`; this file by `python -m benchmarks.speed.report"
              + (" --before ...`." if before else "`."),
              ("CPU time of the benchmark process, so other processes on a shared machine count less; still, "
               "compare rows of the same run only.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS / "speed.json")
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.md")
    args = parser.parse_args()
    before = overheads(args.before) if args.before else None
    args.out.write_text(report(overheads(args.json), before, args.json))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
