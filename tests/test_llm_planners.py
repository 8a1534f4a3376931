import multiprocessing
import socket
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from helpers import run_teacher
from llm_fixtures import FakeServer, build_tiny_model

from teacher_wrappers import TeacherWrapper
from teacher_wrappers.cache import AnswerCache
from teacher_wrappers.planners import RecordedPlanner, make_planner
from teacher_wrappers.planners.llm import PlannerError
from teacher_wrappers.planners.openai import OpenAIPlanner

pytestmark = pytest.mark.xdist_group("llm")  # the LLM tests share a worker: fixtures made, transformers imported once

TEXTS = ["Agent sees <key>, <door>, holds <nothing>.", "Agent sees <door>, holds <key>."]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


def _is_distribution(answer):
    return answer and abs(sum(prob for _, prob in answer) - 1.0) < 1e-6 and all(p >= 0 for _, p in answer)


# -- hf: a tiny random model, saved and loaded through the real code path ----------------------------

def test_hf_sample_mode_through_the_real_loading_path(tiny_model, tmp_path):
    planner = make_planner("hf", model=tiny_model, mode="sample", n=4, max_new_tokens=6,
                           cache=tmp_path / "answers.sqlite")
    answers = planner.plan(TEXTS)
    assert len(answers) == 2 and all(_is_distribution(answer) for answer in answers)
    assert planner.queries == 2 and planner.last_misses == set(TEXTS)
    again = make_planner("hf", model=tiny_model, mode="sample", n=4, max_new_tokens=6,
                         cache=tmp_path / "answers.sqlite")
    assert again.plan(TEXTS) == answers  # replayed from the persistent cache, no generation
    assert again.queries == 0 and again.cache_hits == 2 and again.last_misses == set()


def test_hf_score_mode_spreads_over_admissible_plans(tiny_model):
    planner = make_planner("hf", model=tiny_model, mode="score", cache=False)
    [answer] = planner.plan(["Agent sees <color1 key>, <color2 door>, holds <color2 key>."])
    assert _is_distribution(answer)
    assert {plan for plan, _ in answer} == {
        "explore", "drop <color2 key>, go to <color1 key>, pick up <color1 key>",
        "go to <color2 door>, open <color2 door>"}
    assert planner.plan(["Agent sees <color1 key>, <color2 door>, holds <color2 key>."]) == [answer]  # deterministic


def test_episodes_run_with_a_tiny_llm_teacher(tiny_model, tmp_path):
    planner = make_planner("hf", model=tiny_model, mode="score", cache=tmp_path / "c.sqlite")
    env = TeacherWrapper(gym.make("TeacherWrappers/SimpleDoorKey-v0"), planner=planner)

    def valid(obs):
        assert obs["teacher_probs"].sum() == pytest.approx(1.0, abs=1e-5)

    run_teacher(env, 2, on_step=valid)
    stats = env.teacher_stats()
    assert stats["llm_calls"] == planner.queries > 0 and stats["llm_calls"] < stats["steps"]


def test_llm_planner_classes_are_exported_lazily():
    # a fresh interpreter: the planners package leaves the LLM backends unimported until one is asked for
    backends = ("teacher_wrappers.planners.hf", "teacher_wrappers.planners.openai", "transformers")
    code = (f"import sys; from teacher_wrappers import planners; print([m for m in {backends} if m in sys.modules]); "
            f"planners.OpenAIPlanner; print([m for m in {backends} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1]).stdout.splitlines()
    assert out == ["[]", "['teacher_wrappers.planners.openai']"]
    from teacher_wrappers import planners
    from teacher_wrappers.planners.hf import HFPlanner

    assert planners.HFPlanner is HFPlanner and planners.OpenAIPlanner is OpenAIPlanner


def test_hf_never_downloads(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="without downloading"):
        make_planner("hf", model="nobody/not-a-cached-model", cache=False)
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        make_planner("hf", model="no-such-folder", cache=False)


# -- openai: a real HTTP server on 127.0.0.1 --------------------------------------------------------

def test_openai_good_answers_concurrently_and_cached(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    server.delay = 0.2
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", n=5, cache=tmp_path / "a.sqlite")
    texts = [f"Agent sees <key>, holds <nothing>. {i}" for i in range(4)]
    answers = planner.plan(texts)
    assert answers == [[("go to <key>, pick up <key>", 1.0)]] * 4
    assert server.max_in_flight > 1  # the batch went out concurrently
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for h in server.headers)
    assert "sk-secret" not in repr(planner)
    assert b"sk-secret" not in (tmp_path / "a.sqlite").read_bytes()
    sent = len(server.requests)
    assert planner.plan(texts) == answers and len(server.requests) == sent  # cache: no new request


def test_openai_garbage_text_becomes_unparsed_steps(server):
    server.mode = "garbage"
    env = TeacherWrapper(gym.make("TeacherWrappers/SimpleDoorKey-v0"),
                         planner=OpenAIPlanner(base_url=server.url, model="fake-model", n=3, cache=False))
    obs, info = env.reset(seed=0)
    assert info["teacher"]["plan"] == "I like turtles."
    assert info["teacher"]["option"] == "explore"  # nothing to act on: the teacher explores
    assert env.teacher_stats()["unparsed_steps"] == 1 and env.teacher_stats()["fallbacks"] >= 1


def test_openai_retries_server_errors(server):
    server.mode = "flaky"
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", n=2, backoff=0.01, cache=False)
    assert planner.plan(TEXTS[:1]) == [[("go to <key>, pick up <key>", 1.0)]]
    assert len(server.requests) == 2


@pytest.mark.parametrize("mode,match", [("malformed", "malformed JSON"), ("slow", "timed out|TimeoutError")])
def test_openai_gives_up_with_a_clear_error(server, mode, match):
    server.mode = mode
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", n=2, timeout=0.3, max_retries=1,
                            backoff=0.01, cache=False)
    with pytest.raises(PlannerError, match=rf"{server.url}.*fake-model.*after 2 attempts.*({match})"):
        planner.plan(TEXTS[:1])


def test_openai_closed_port_fails_at_construction():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ConnectionError, match=rf"cannot reach .*{url}.*'my-model'"):
        OpenAIPlanner(base_url=url, model="my-model", cache=False)


def test_openai_unknown_model_fails_at_construction(server):
    with pytest.raises(ValueError, match="does not serve this model; it serves: fake-model"):
        OpenAIPlanner(base_url=server.url, model="gpt-17", cache=False)


def test_openai_score_mode_uses_prompt_logprobs_or_falls_back_to_sampling(server):
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", cache=False)
    [answer] = planner.plan(["Agent sees <key>, <door>, holds <nothing>."])
    probs = dict(answer)
    assert max(probs, key=probs.get) == "go to <key>, pick up <key>" and _is_distribution(answer)
    server.mode = "no_logprobs"
    [answer] = planner.plan(["Agent sees <key>, holds <nothing>."])
    assert planner.mode == "sample" and answer == [("go to <key>, pick up <key>", 1.0)]


# -- the answer cache -------------------------------------------------------------------------------

def _write_entries(path, start):
    cache = AnswerCache(path)
    for i in range(start, start + 25):
        cache.put("hf", "m", "v1", f"text {i}", {"n": 1}, [("explore", 1.0)])


def test_cache_is_safe_with_several_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    AnswerCache(path).put("hf", "m", "v1", "first", {}, [("explore", 1.0)])
    ctx = multiprocessing.get_context("fork")  # processes of their own, without a spawned one's imports
    workers = [ctx.Process(target=_write_entries, args=(path, 100 * i)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(AnswerCache(path).rows()) == 1 + 4 * 25


def test_cache_keys_separate_models_and_settings(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    cache.put("hf", "a", "v1", "t", {"n": 10}, [("explore", 1.0)])
    assert cache.get("hf", "a", "v1", "t", {"n": 10}) == [("explore", 1.0)]
    assert cache.get("hf", "b", "v1", "t", {"n": 10}) is None
    assert cache.get("hf", "a", "v1", "t", {"n": 5}) is None
    assert cache.get("hf", "a", "v2", "t", {"n": 10}) is None


def test_cache_cli_round_trip_and_recorded_table(tmp_path, server, capsys):
    from teacher_wrappers.cache import main

    planner = OpenAIPlanner(base_url=server.url, model="fake-model", n=2, cache=tmp_path / "a.sqlite")
    planner.plan(TEXTS)
    path = ["--path", str(tmp_path / "a.sqlite")]
    # as a user runs it; the other commands through the same main() in this process
    listing = subprocess.run([sys.executable, "-m", "teacher_wrappers.cache", *path, "list"], capture_output=True,
                             text=True, check=True).stdout
    assert "fake-model" in listing and TEXTS[0] in listing
    assert main([*path, "export", str(tmp_path / "out.jsonl")]) == 0
    assert main(["--path", str(tmp_path / "b.sqlite"), "import", str(tmp_path / "out.jsonl")]) == 0
    assert AnswerCache(tmp_path / "b.sqlite").rows() == AnswerCache(tmp_path / "a.sqlite").rows()
    assert main([*path, "export-table", str(tmp_path / "table.json"), "--backend", "openai", "--model", "fake-model",
                 "--task", "Mine"]) == 0
    replay = RecordedPlanner(path=tmp_path / "table.json", table="Mine")
    assert replay.plan(TEXTS) == planner.plan(TEXTS)
    capsys.readouterr()
    assert main([*path, "export-table", str(tmp_path / "t2.json"), "--backend", "hf", "--model", "x", "--task", "T"]) == 2
    assert "no answers" in capsys.readouterr().err
