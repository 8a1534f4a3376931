import math
import multiprocessing
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from helpers import run_teacher
from llm_fixtures import FakeServer, build_tiny_model, fake_tokenize, fake_true_logprobs

from teacher_wrappers import TeacherWrapper
from teacher_wrappers.cache import AnswerCache
from teacher_wrappers.planners import RecordedPlanner, make_planner
from teacher_wrappers.planners.llm import PlannerError
from teacher_wrappers.planners.openai import OpenAIPlanner
from teacher_wrappers.planners.scoring import SCORER_VERSION
from teacher_wrappers.prompt import chat_messages
from teacher_wrappers.styles import get_style

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


# -- score mode: one definition, checked servers ----------------------------------------------------

KEY_TEXT = "Agent sees <key>, <door>, holds <nothing>."


def _answered(tokenizer, text, style, plan):
    """The answered conversation as the tiny model's chat template renders it, and where the plan starts."""
    messages = [*chat_messages(text, style), {"role": "assistant", "content": f"Plan: {plan}"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    return rendered, rendered.rindex(f"Plan: {plan}") + len("Plan:")


def _fake_server_answer(tokenizer, text, style_name="plain"):
    """Score mode on the fake server's model, computed here: the log-probabilities of the tokens of ' <plan>'
    and of the [EOS] after it, softmaxed over the admissible plans."""
    style = get_style(style_name)
    plans, scores = style.admissible_plans(text), []
    for plan in plans:
        rendered, start = _answered(tokenizer, text, style, plan)
        pieces = fake_tokenize(rendered)
        values = fake_true_logprobs(pieces)
        offsets = [sum(map(len, pieces[:i])) for i in range(len(pieces))]
        picked = [i for i, offset in enumerate(offsets) if start <= offset < start + 1 + len(plan)]
        assert pieces[picked[-1] + 1] == "[EOS]"
        scores.append(sum(values[i] for i in [*picked, picked[-1] + 1]))
    weights = [math.exp(score - max(scores)) for score in scores]
    return [(plan, weight / sum(weights)) for plan, weight in zip(plans, weights)]


def _close(answer, expected):
    return [plan for plan, _ in answer] == [plan for plan, _ in expected] and \
        all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for (_, a), (_, b) in zip(answer, expected))


def test_hf_batched_scores_equal_unbatched_forward_passes(tiny_model):
    import torch

    planner = make_planner("hf", model=tiny_model, mode="score", cache=False)
    style, text = get_style("colored"), "Agent sees <color1 key>, <color2 door>, holds <color2 key>."
    [answer] = planner.plan([text], style)
    plans = style.admissible_plans(text)
    assert [plan for plan, _ in answer] == plans and len({len(plan) for plan in plans}) == 3  # rows padded
    tokenizer, scores = planner.tokenizer, []
    for plan in plans:  # one plan at a time, no padding: the prompt's tokens, then the plan's and [EOS]
        rendered, start = _answered(tokenizer, text, style, plan)
        prompt = tokenizer(rendered[:start], add_special_tokens=False)["input_ids"]
        scored = tokenizer(f" {plan}[EOS]", add_special_tokens=False)["input_ids"]
        ids = tokenizer(rendered, add_special_tokens=False)["input_ids"][: len(prompt) + len(scored)]
        assert ids == prompt + scored and scored[-1] == tokenizer.eos_token_id
        with torch.no_grad():
            log_probs = torch.log_softmax(planner.network(torch.tensor([ids])).logits[0].float(), dim=-1)
        scores.append(sum(float(log_probs[p - 1, ids[p]]) for p in range(len(prompt), len(ids))))
    for (_, prob), score in zip(answer, scores):
        assert math.log(prob) - math.log(answer[0][1]) == pytest.approx(score - scores[0], abs=1e-3)


@pytest.mark.parametrize("mode", ["good", "shifted_echo"])
def test_openai_score_mode_computes_the_definition_and_corrects_a_shifted_echo(server, tiny_model, mode, tmp_path):
    server.mode = mode
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        planner = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model,
                                cache=tmp_path / "a.sqlite")
    corrections = [str(w.message) for w in caught if "corrects for it" in str(w.message)]
    assert len(corrections) == (mode == "shifted_echo")
    assert planner.score_route == ("client-template", -1 if mode == "shifted_echo" else 0)
    [answer] = planner.plan([KEY_TEXT])
    assert _close(answer, _fake_server_answer(planner.tokenizer, KEY_TEXT))
    [row] = AnswerCache(tmp_path / "a.sqlite").rows()  # recorded: scored, by which scorer, which way
    assert row["settings"] == f'{{"mode": "score", "scorer": "{SCORER_VERSION}", "via": "client-template"}}'


def test_openai_score_mode_through_server_side_chat_templates(server, tiny_model):
    server.chat_prompt_logprobs = True  # vLLM's chat completions with prompt_logprobs
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", cache=False)
    assert planner.score_route == ("server-template", 0) and planner.tokenizer is None
    [answer] = planner.plan([KEY_TEXT])
    client = make_planner("hf", model=tiny_model, cache=False).tokenizer  # the same template, rendered here
    assert _close(answer, _fake_server_answer(client, KEY_TEXT))


def test_openai_refuses_an_echo_it_cannot_correct(server, tiny_model):
    server.mode = "misaligned_echo"  # llama-cpp-python's echo of a prompt without a BOS token
    with pytest.raises(PlannerError) as error:
        OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model, cache=False)
    message = str(error.value)
    assert "\n" not in message and server.url in message and "echoed prompt log-probabilities do not match" in message
    assert "mode='sample'" in message


def test_openai_score_mode_never_skips_a_token_without_a_value(server, tiny_model):
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model, cache=False)
    server.mode = "null_logprob"  # the " up" of "pick up" has no logprob
    with pytest.raises(PlannerError, match="cannot score .*has no log-probability"):
        planner.plan([KEY_TEXT])


@pytest.mark.parametrize("mode,why", [("no_logprobs", "no logprobs"), ("no_echo", "echo is not supported")])
def test_openai_samples_where_the_server_cannot_score_and_not_in_later_runs(server, tiny_model, mode, why):
    server.mode = mode
    with pytest.warns(UserWarning, match=f"cannot score plans .*{why}"):
        planner = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model,
                                cache=False)
    assert planner.plan([KEY_TEXT]) == [[("go to <key>, pick up <key>", 1.0)]] and planner.mode == "sample"
    state = planner.state_dict()
    assert "mode" not in state  # the switch stays in this run
    server.mode = "good"  # a later run, the server fixed: it scores again
    later = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model, cache=False)
    later.load_state_dict(state | {"mode": "sample"})  # an older state's mode is ignored too
    assert later.mode == "score" and _close(later.plan([KEY_TEXT])[0], _fake_server_answer(later.tokenizer, KEY_TEXT))


def test_openai_too_long_prompt_is_an_error_not_a_switch_to_sampling(server, tiny_model):
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model, cache=False)
    server.mode = "too_long"
    with pytest.raises(PlannerError, match="longer than the server's context .*maximum context length") as error:
        planner.plan([KEY_TEXT])
    assert "\n" not in str(error.value) and planner.mode == "score"


def test_openai_answers_are_cached_under_the_settings_they_were_made_with(server, tiny_model, tmp_path):
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model, n=2,
                            concurrency=1, cache=tmp_path / "a.sqlite")
    second = "Agent sees <door>, holds <key>."
    server.unsupported_after = server.scoring_requests + len(get_style("plain").admissible_plans(KEY_TEXT))
    with pytest.warns(UserWarning, match="cannot score plans .*HTTP 501"):
        answers = planner.plan([KEY_TEXT, second])  # the first scored, then the server stops scoring
    assert _close(answers[0], _fake_server_answer(planner.tokenizer, KEY_TEXT))
    assert answers[1] == [("go to <key>, pick up <key>", 1.0)]  # sampled
    settings = {row["prompt"]: row["settings"] for row in AnswerCache(tmp_path / "a.sqlite").rows()}
    assert '"mode": "score"' in settings[KEY_TEXT] and settings[second] == \
        '{"max_new_tokens": 40, "mode": "sample", "n": 2, "seed": 0, "temperature": 1.0}'


def test_old_score_mode_answers_are_not_replayed_sample_mode_answers_are(server, tiny_model, tmp_path):
    cache = AnswerCache(tmp_path / "a.sqlite")
    version = get_style("plain").prompt_version
    cache.put("openai", "fake-model", version, KEY_TEXT, {"mode": "score"}, [("explore", 1.0)])  # the old key
    sample_settings = {"mode": "sample", "n": 10, "temperature": 1.0, "max_new_tokens": 40, "seed": 0}
    cache.put("openai", "fake-model", version, KEY_TEXT, sample_settings, [("go to <door>, open <door>", 1.0)])
    scorer = OpenAIPlanner(base_url=server.url, model="fake-model", mode="score", tokenizer=tiny_model, cache=cache)
    assert _close(scorer.plan([KEY_TEXT])[0], _fake_server_answer(scorer.tokenizer, KEY_TEXT))
    assert scorer.cache_hits == 0 and scorer.queries == 1
    sampler = OpenAIPlanner(base_url=server.url, model="fake-model", cache=cache)
    assert sampler.plan([KEY_TEXT]) == [[("go to <door>, open <door>", 1.0)]] and sampler.cache_hits == 1


# -- sample mode on servers that ignore n -----------------------------------------------------------

@pytest.mark.parametrize("mode,requests", [("ignores_n", 10), ("capped_n", 3)])
def test_openai_sample_mode_asks_again_with_distinct_seeds(server, mode, requests):
    server.mode = mode
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", n=10, seed=5, cache=False)
    with pytest.warns(UserWarning, match="returned (1|4) of the 10 answers asked for"):
        [answer] = planner.plan([KEY_TEXT])
    sent = server.sample_requests()
    assert len(sent) == requests and len({r["seed"] for r in sent}) == requests and sent[0]["seed"] == 5
    assert sum(r["n"] for r in sent) == sum(range(10, 0, -1)) if mode == "ignores_n" else [r["n"] for r in sent] == [10, 6, 2]
    assert not planner.n_honoured and abs(sum(p for _, p in answer) - 1) < 1e-9
    if mode == "ignores_n":  # the seed picks the fake's answer: distinct seeds, distinct answers
        assert len(answer) > 1


def test_openai_empty_choices_is_an_error(server):
    server.mode = "empty_choices"
    planner = OpenAIPlanner(base_url=server.url, model="fake-model", n=3, cache=False)
    with pytest.raises(PlannerError, match="chat reply with no choices") as error:
        planner.plan([KEY_TEXT])
    assert "\n" not in str(error.value) and len(server.requests) == 1


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
