"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, ...) as the planner.

Chat completions with n samples per prompt (`sample`; a server that ignores `n` or returns fewer
answers is asked again, each request with its own seed), or the score of each admissible plan as
teacher_wrappers.planners.scoring defines it (`score`), computed from the prompt log-probabilities of
the answered conversation rendered by the model's chat template:
- on the server, through chat completions with `prompt_logprobs` where it offers them (vLLM);
- else on the client, with the model's tokenizer (`tokenizer`, or the model name where it names a
  local model), through the completions endpoint with `echo`.
Before trusting a server's numbers the planner probes them once: the log-probabilities it echoes for a
few tokens must equal those it gives for the same tokens generated. An echo offset by one position is
corrected, anything else refused with one line. A server that offers neither way, or refuses echo or
logprobs, is sampled instead, with one warning; a prompt longer than the server's context is an error.
Which way the scores came is part of each answer's cache key (`via`).

Timeouts, retries with exponential backoff on 429/5xx, malformed replies and timeouts, and concurrent
requests for a batch. An unreachable server or an unknown model fails at construction, with the URL and
the model in the message. The API key is read from an environment variable and never logged, cached or
written anywhere.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor

from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.planners.llm import (
    LLMPlanner,
    PlannerError,
    distribution_from_samples,
)
from teacher_wrappers.planners.scoring import (
    ScoringError,
    answered_conversation,
    echo_shift,
    plan_logprob,
    scored_indices,
    softmax,
    spans_of,
)
from teacher_wrappers.prompt import chat_messages
from teacher_wrappers.styles import TextStyle

RETRY_STATUS = {429, 500, 502, 503, 504}
REFUSED_STATUS = {400, 404, 405, 422, 501}  # a scoring request refused: why decides what the planner does
ABSENT_STATUS = {404, 405, 501}  # no such endpoint: this server cannot score that way
_TOO_LONG = re.compile(r"context (length|window|size)|maximum context|too long|too many tokens|exceed|n_ctx", re.IGNORECASE)
_CANNOT_SCORE = re.compile(r"echo|logprob|add_generation_prompt|continue_final_message|not supported|unsupported|"
                           r"not implemented", re.IGNORECASE)
PROBE_MESSAGES = [{"role": "user", "content": "Name three colours."}]
PROBE_TOKENS = 3
SEED_STRIDE = 1_000_003  # follow-up sample requests: seed + i * SEED_STRIDE, distinct from other planners' seeds


class _ScoringUnsupported(Exception):
    """The server cannot score plans (this way): the planner tries another way, or samples instead."""


def request_seed(seed: int, request: int) -> int:
    """The seed of a text's `request`-th sample request (the first keeps the planner's seed)."""
    return seed if request == 0 else (seed + request * SEED_STRIDE) % 2**31


def _one_line(body: bytes | str, limit: int = 300) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    return " ".join(text.split())[:limit]


class OpenAIPlanner(LLMPlanner):
    """Plans from an OpenAI-compatible server at `base_url` (e.g. http://localhost:8000/v1).

    `tokenizer`: where score mode finds the model's tokenizer to render the chat template on the client
    (a folder, a cached hub id, a GGUF file or "smollm2", as the hf planner takes a model, or a loaded
    transformers tokenizer); by default the model name, where it names one.
    """

    name = "openai"
    backend = "openai"

    def __init__(self, base_url: str = "http://localhost:8000/v1", model: str = "", mode: str = "sample",
                 n: int = 10, temperature: float = 1.0, max_new_tokens: int = 40, seed: int = 0,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0, max_retries: int = 3,
                 backoff: float = 0.5, concurrency: int = 8, cache=None, task: str | None = None,
                 tokenizer=None):
        if not model:
            raise ValueError("the openai planner needs a model name (--model)")
        super().__init__(model, mode, n, temperature, max_new_tokens, seed, cache)
        self.base_url = base_url.rstrip("/")
        self._api_key_env = api_key_env
        self.timeout, self.max_retries, self.backoff, self.concurrency = timeout, max_retries, backoff, concurrency
        self._fallback_lock = threading.Lock()
        self._tokenizer_name = tokenizer
        self.tokenizer = None  # loaded for client-side scoring only
        self.score_route: tuple[str, int] | None = None  # (via, echo shift) once the server is checked
        self.n_honoured = True  # False once the server returned fewer sampled answers than asked
        self._check_server()
        if mode == "score":
            self._prepare_scoring()

    def __repr__(self) -> str:  # no key in logs
        return f"OpenAIPlanner(base_url={self.base_url!r}, model={self.model!r}, mode={self.mode!r})"

    def _where(self) -> str:
        return f"OpenAI-compatible server {self.base_url} (model {self.model!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self._api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(self, path: str, payload: dict | None = None, scoring: bool = False) -> dict:
        """One call with retries; returns the decoded JSON reply. A scoring request the server refuses
        because it cannot score raises _ScoringUnsupported; one refused for a prompt longer than its context,
        or for anything else, a PlannerError."""
        data = None if payload is None else json.dumps(payload).encode()
        last_error = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.base_url + path, data=data, headers=self._headers(),
                                             method="GET" if data is None else "POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    body = reply.read()
            except urllib.error.HTTPError as error:
                self.charge()
                last_error = f"HTTP {error.code}"
                if error.code in RETRY_STATUS:
                    continue
                message = _one_line(error.read()[:2000])
                if _TOO_LONG.search(message):
                    raise PlannerError(f"{self._where()}: the prompt is longer than the server's context (HTTP "
                                       f"{error.code} on {path}: {message}); serve the model with a longer "
                                       f"context") from error
                if scoring and error.code in REFUSED_STATUS and (error.code in ABSENT_STATUS
                                                                  or _CANNOT_SCORE.search(message)):
                    raise _ScoringUnsupported(f"HTTP {error.code} on {path}: {message}") from error
                raise PlannerError(f"{self._where()} answered {path} with HTTP {error.code}: {message}") from error
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
                last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
                continue
            try:
                reply = json.loads(body)
            except json.JSONDecodeError:
                self.charge()
                last_error = f"malformed JSON reply: {body[:200]!r}"
                continue
            usage = reply.get("usage") if isinstance(reply, dict) else None
            usage = usage if isinstance(usage, dict) else {}
            self.charge(1, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
            return reply
        raise PlannerError(f"{self._where()} failed on {path} after {self.max_retries + 1} attempts: {last_error}")

    def _check_server(self) -> None:
        """Fail now, not in the middle of training: the server must answer and serve the model."""
        request = urllib.request.Request(self.base_url + "/models", headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, 10)) as reply:
                listing = json.loads(reply.read())
        except urllib.error.HTTPError as error:
            raise ConnectionError(f"{self._where()}: GET /models answered HTTP {error.code}") from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise ConnectionError(f"cannot reach the {self._where()}: {getattr(error, 'reason', error)}") from error
        except json.JSONDecodeError as error:
            raise ConnectionError(f"{self._where()}: GET /models did not return JSON") from error
        served = [entry.get("id") for entry in listing.get("data", []) if isinstance(entry, dict)]
        if self.model not in served:
            raise ValueError(f"{self._where()} does not serve this model; it serves: {', '.join(map(str, served))}")

    def settings(self) -> dict:
        if self.mode == "score":
            self._prepare_scoring()  # the way it scores is part of the key; a server that cannot score is sampled
        return super().settings()

    def score_via(self) -> str:
        """'server-template' (chat completions with prompt logprobs) or 'client-template' (the chat template
        rendered here, scored through completions with echo)."""
        self._prepare_scoring()
        return self.score_route[0] if self.score_route else "none"

    def _answer(self, texts: list[str], style: TextStyle) -> list[tuple[PlanDistribution, dict]]:
        start = time.perf_counter()
        if self.mode == "score":
            self._prepare_scoring()
        answer_one = self._sample if self.mode == "sample" else self._score
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(texts)))) as pool:
            answers = list(pool.map(answer_one, texts, [style] * len(texts)))
        self.live_seconds += time.perf_counter() - start
        return answers

    # -- sample mode --------------------------------------------------------------------------------

    def _chat(self, text: str, n: int, style: TextStyle, seed: int) -> list[str]:
        reply = self._request("/chat/completions", {
            "model": self.model, "messages": chat_messages(text, style), "n": n, "temperature": self.temperature,
            "max_tokens": self.max_new_tokens, "seed": seed})
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not isinstance(choices, list) or not choices:
            raise PlannerError(f"{self._where()}: chat reply with no choices: {json.dumps(reply)[:300]}")
        try:
            return [str(choice["message"]["content"] or "") for choice in choices]
        except (KeyError, TypeError) as error:
            raise PlannerError(f"{self._where()}: chat reply without choices/message/content: "
                               f"{json.dumps(reply)[:300]}") from error

    def _sample(self, text: str, style: TextStyle) -> tuple[PlanDistribution, dict]:
        answers: list[str] = []
        request = 0
        while len(answers) < self.n:  # some servers ignore n and return one choice per request
            asked = self.n - len(answers)
            got = self._chat(text, asked, style, request_seed(self.seed, request))
            if len(got) < asked:
                self._note_fewer_answers(len(got), asked)
            answers += got[:asked]
            request += 1
        return distribution_from_samples(answers), self.sample_settings()

    def _note_fewer_answers(self, got: int, asked: int) -> None:
        with self._fallback_lock:
            if self.n_honoured:
                self.n_honoured = False
                warnings.warn(f"{self._where()} returned {got} of the {asked} answers asked for (it ignores or caps "
                              f"`n`); the planner asks for the rest in further requests, each with its own seed",
                              stacklevel=3)

    # -- score mode ---------------------------------------------------------------------------------

    def _prepare_scoring(self) -> None:
        """Find how this server can score and check its numbers (once); sample instead where it cannot."""
        with self._fallback_lock:
            if self.score_route is not None or self.mode != "score":
                return
            reasons = []
            try:
                self.score_route = ("server-template", self._probe_chat())
                return
            except _ScoringUnsupported as error:
                reasons.append(f"chat completions: {error}")
            tokenizer = self._client_tokenizer()
            if tokenizer is None:
                reasons.append("no tokenizer of the model here to render its chat template (pass tokenizer=)")
            else:
                try:
                    self.score_route = ("client-template", self._probe_completions(tokenizer))
                    self.tokenizer = tokenizer
                    return
                except _ScoringUnsupported as error:
                    reasons.append(f"completions: {error}")
            self._switch_to_sampling("; ".join(reasons))

    def _switch_to_sampling(self, why: str) -> None:
        """For the rest of this run only (not saved in the state): warn once, then sample. Holds the lock."""
        if self.mode == "score":
            warnings.warn(f"{self._where()} cannot score plans ({why}); the openai planner samples {self.n} "
                          f"answers per text instead", stacklevel=4)
            self.mode = "sample"

    def _client_tokenizer(self):
        """The model's tokenizer with its chat template, or None where none is at hand (a named one must load)."""
        from teacher_wrappers.planners.hf import load_tokenizer, resolve_model

        name = self._tokenizer_name or self.model
        if not isinstance(name, str):  # a tokenizer object
            tokenizer, name = name, getattr(name, "name_or_path", "the tokenizer given")
        else:
            try:
                resolve_model(name)  # cheap: is it a local model at all?
                tokenizer = load_tokenizer(name)
            except (FileNotFoundError, ValueError):
                if self._tokenizer_name:
                    raise
                return None
        if not getattr(tokenizer, "chat_template", None) or not getattr(tokenizer, "is_fast", False):
            if self._tokenizer_name:
                raise ValueError(f"tokenizer {name!r} has no chat template or is not a fast tokenizer: it cannot "
                                 f"render the prompt that score mode scores")
            return None
        return tokenizer

    def _checked_shift(self, pieces: list[str], values: list, probe: list[tuple[str, float]]) -> int:
        """The echo shift that makes the server's echoed values of the probe tokens equal its generated ones;
        refuses (PlannerError) where none does."""
        text = "".join(pieces)
        at = text.rfind("".join(token for token, _ in probe))
        starts = {start: index for index, (start, end) in enumerate(spans_of(pieces)) if end > start}
        positions, expected = [], []
        for token, value in probe:  # a token merged with its neighbour in the echo cannot be compared
            if at >= 0 and at in starts and pieces[starts[at]] == token:
                positions.append(starts[at])
                expected.append(value)
            at += len(token)
        if len(positions) < min(2, len(probe)):
            raise _ScoringUnsupported(f"the probe's tokens {[t for t, _ in probe]} are not in its echo")
        shift = echo_shift(values, positions, expected)
        if shift is None:
            raise PlannerError(f"{self._where()}: its echoed prompt log-probabilities do not match its own "
                               f"log-probabilities of the same tokens (probe token {pieces[positions[0]]!r}: echoed "
                               f"{values[positions[0]]}, generated {expected[0]:.4f}), so score mode would rank "
                               f"plans by wrong numbers; use mode='sample', or a server whose echo is right")
        if shift:
            warnings.warn(f"{self._where()} echoes each prompt token's log-probability {abs(shift)} position "
                          f"{'early' if shift < 0 else 'late'}; the openai planner corrects for it", stacklevel=4)
        return shift

    def _probe_chat(self) -> int:
        """Chat completions: a few tokens generated with their logprobs, then the same tokens as the final
        assistant message with prompt logprobs (vLLM's extension)."""
        reply = self._request("/chat/completions", {
            "model": self.model, "messages": PROBE_MESSAGES, "max_tokens": PROBE_TOKENS, "temperature": 0,
            "logprobs": True, "seed": 0}, scoring=True)
        try:
            generated = [(str(entry["token"]), float(entry["logprob"]))
                         for entry in reply["choices"][0]["logprobs"]["content"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise _ScoringUnsupported("its chat completions carry no logprobs") from None
        if not generated:
            raise _ScoringUnsupported("its chat completions carry no logprobs")
        answer = "".join(token for token, _ in generated)
        echoed = self._request("/chat/completions", {
            "model": self.model, "messages": [*PROBE_MESSAGES, {"role": "assistant", "content": answer}],
            "max_tokens": 1, "temperature": 0, "prompt_logprobs": 0, "add_generation_prompt": False,
            "continue_final_message": True}, scoring=True)
        pieces, values = _prompt_logprobs(echoed)
        return self._checked_shift(pieces, values, generated)

    def _probe_completions(self, tokenizer) -> int:
        """Completions: a few tokens generated after a chat-templated prompt, then the prompt with those
        tokens echoed."""
        prompt = tokenizer.apply_chat_template(PROBE_MESSAGES, add_generation_prompt=True, tokenize=False)
        reply = self._request("/completions", {"model": self.model, "prompt": prompt, "max_tokens": PROBE_TOKENS,
                                               "temperature": 0, "logprobs": 1, "seed": 0}, scoring=True)
        try:
            logprobs = reply["choices"][0]["logprobs"]
            generated = [(str(token), float(value)) for token, value in
                         zip(logprobs["tokens"], logprobs["token_logprobs"], strict=True)]
        except (KeyError, IndexError, TypeError, ValueError):
            raise _ScoringUnsupported("its completions carry no logprobs") from None
        if not generated:
            raise _ScoringUnsupported("its completions carry no logprobs")
        echoed = self._request("/completions", {
            "model": self.model, "prompt": prompt + "".join(token for token, _ in generated), "max_tokens": 1,
            "temperature": 0, "logprobs": 1, "echo": True}, scoring=True)
        pieces, values = _echoed_logprobs(echoed)
        return self._checked_shift(pieces, values, generated)

    def _score(self, text: str, style: TextStyle) -> tuple[PlanDistribution, dict]:
        via, shift = self.score_route
        plans = style.admissible_plans(text)
        settings = self.score_settings()
        scores = []
        try:
            for plan in plans:
                messages = answered_conversation(text, style, plan)
                if via == "server-template":
                    reply = self._request("/chat/completions", {
                        "model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0,
                        "prompt_logprobs": 0, "add_generation_prompt": False, "continue_final_message": False},
                        scoring=True)
                    pieces, values = _prompt_logprobs(reply)
                    indices = scored_indices("".join(pieces), spans_of(pieces), plan)
                else:
                    rendered = self.tokenizer.apply_chat_template(messages, tokenize=False)
                    reply = self._request("/completions", {"model": self.model, "prompt": rendered, "max_tokens": 1,
                                                           "echo": True, "logprobs": 1, "temperature": 0},
                                          scoring=True)
                    pieces, values = _echoed_logprobs(reply)
                    indices = scored_indices("".join(pieces), spans_of(pieces), plan)
                    self._check_end_token(rendered, plan, pieces[indices[-1]])
                scores.append(plan_logprob(values, indices, shift))
        except _ScoringUnsupported as error:
            return self._sample_instead(text, style, str(error))
        except ScoringError as error:
            raise PlannerError(f"{self._where()}: cannot score {text!r}: {error}") from error
        return softmax(plans, scores), settings

    def _check_end_token(self, rendered: str, plan: str, echoed: str) -> None:
        """The server must read the end-of-answer token as the one token the tokenizer makes of it (a server
        that does not parse special tokens in prompts splits it into pieces)."""
        encoded = self.tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
        start, end = encoded["offset_mapping"][scored_indices(rendered, encoded["offset_mapping"], plan)[-1]]
        if echoed not in ("", rendered[start:end]):  # a special token may be echoed as empty text
            raise ScoringError(f"the server tokenises the end-of-answer token {rendered[start:end]!r} differently "
                               f"(its token there is {echoed!r}): it does not read special tokens in prompts")

    def _sample_instead(self, text: str, style: TextStyle, why: str) -> tuple[PlanDistribution, dict]:
        """A scoring request refused because the server cannot score: warn once (texts are answered
        concurrently), then sample, this text and the rest of this run."""
        with self._fallback_lock:
            self._switch_to_sampling(why)
        return self._sample(text, style)


def _echoed_logprobs(reply: dict) -> tuple[list[str], list]:
    """(token texts, their logprobs) of a completions reply with echo."""
    try:
        logprobs = reply["choices"][0]["logprobs"]
        pieces, values = [str(piece) for piece in logprobs["tokens"]], list(logprobs["token_logprobs"])
    except (KeyError, IndexError, TypeError):
        raise _ScoringUnsupported("its completions carry no prompt logprobs") from None
    if len(pieces) != len(values) or not pieces:
        raise _ScoringUnsupported("its completions carry no prompt logprobs")
    return pieces, values


def _prompt_logprobs(reply: dict) -> tuple[list[str], list]:
    """(token texts, their logprobs) of vLLM's `prompt_logprobs` (one {token id: {logprob, decoded_token}} per
    prompt token; None for the first)."""
    entries = reply.get("prompt_logprobs") if isinstance(reply, dict) else None
    if not isinstance(entries, list) or not entries:
        raise _ScoringUnsupported("its chat completions carry no prompt logprobs")
    pieces, values = [], []
    for entry in entries:
        if entry is None:
            pieces.append("")
            values.append(None)
            continue
        try:
            [(_, logprob)] = entry.items()  # prompt_logprobs=0: the prompt's own token only
            pieces.append(str(logprob["decoded_token"]))
            values.append(logprob["logprob"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _ScoringUnsupported(f"its prompt logprobs are not one token per position: {str(entry)[:200]}") \
                from None
    return pieces, values
