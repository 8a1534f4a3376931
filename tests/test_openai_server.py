"""OpenAIPlanner against a real OpenAI-compatible server: `transformers serve` with a tiny random model.

The server runs on 127.0.0.1 on a free port, offline, serving a 2-layer Llama saved to a temp folder.
Skipped only where transformers' serving extras are missing (pip install 'transformers[serving]').
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest
from llm_fixtures import build_tiny_model

SERVING = all(importlib.util.find_spec(name) for name in ("transformers", "fastapi", "uvicorn", "openai"))
pytestmark = [pytest.mark.xdist_group("llm"),  # with the other LLM tests: fixtures made once, transformers imported once
              pytest.mark.skipif(not SERVING, reason="transformers' serving extras are missing: "
                                                    "pip install 'transformers[serving]'")]
TEXTS = ["Agent sees <key>, <door>, holds <nothing>.", "Agent sees <door>, holds <key>."]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, model name) of a `transformers serve` process serving the tiny model."""
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
    port = _free_port()
    log = open(folder / "serve.log", "w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cli = Path(sys.executable).parent / "transformers"  # the console script of this environment
    server = subprocess.Popen([str(cli) if cli.exists() else "transformers", "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as reply:
                    if json.loads(reply.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"transformers serve did not start: {(folder / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url + "/v1", str(folder)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _is_distribution(answer):
    return answer and all(isinstance(plan, str) for plan, _ in answer) and \
        abs(sum(prob for _, prob in answer) - 1) < 1e-9


def test_sample_mode_plans_through_transformers_serve(served, tmp_path):
    from teacher_wrappers.planners.openai import OpenAIPlanner

    url, model = served
    planner = OpenAIPlanner(base_url=url, model=model, n=3, max_new_tokens=6, cache=tmp_path / "a.sqlite")
    answers = planner.plan(TEXTS)
    assert all(_is_distribution(answer) for answer in answers)
    assert planner.queries == 2 and planner.last_misses == set(TEXTS)
    again = OpenAIPlanner(base_url=url, model=model, n=3, max_new_tokens=6, cache=tmp_path / "a.sqlite")
    assert again.plan(TEXTS) == answers and again.queries == 0  # the answer cache replays them


def test_score_mode_falls_back_to_sampling_with_one_warning(served):
    from teacher_wrappers.planners.openai import OpenAIPlanner

    url, model = served
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the model folder is local: its tokenizer renders the chat template, the server is probed both ways
        planner = OpenAIPlanner(base_url=url, model=model, mode="score", n=2, max_new_tokens=6, cache=False)
        answers = planner.plan(TEXTS)  # both texts at once: concurrent requests, still one warning
        answers += planner.plan(["Agent sees <nothing>, holds <nothing>."])
    messages = [str(w.message) for w in caught if "cannot score plans" in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in caught]
    assert "chat completions: " in messages[0] and "completions: its completions carry no" in messages[0]
    assert planner.mode == "sample" and all(_is_distribution(answer) for answer in answers)
    assert "mode" not in planner.state_dict()  # a later run tries to score again


def test_ppo_teacher_trains_with_the_served_model(served, tmp_path):
    from helpers import run_script

    url, model = served
    proc = run_script("ppo_teacher.py", "--planner", "openai", "--base-url", url, "--model", model, "--planner-mode",
                      "score", "--schedule", "linear", "--total-timesteps", "64", "--num-envs", "2", "--num-steps", "32",
                      "--eval-episodes", "1", "--run-name", "served", "--no-progress", cwd=tmp_path,
                      env={"TEACHER_WRAPPERS_CACHE": str(tmp_path / "cache.sqlite")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs/served/summary.json").read_text())
    assert summary["planner"] == "openai" and summary["frames"] == 64
    assert summary["teacher_stats"]["llm_calls"] > 0
