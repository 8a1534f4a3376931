"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, ...) as the planner.

Chat completions with n samples per prompt (`sample`), or, where the server returns prompt logprobs
on its completions endpoint (vLLM does), the likelihood of each admissible plan (`score`); a server
that returns no logprobs or refuses `echo` (`transformers serve` does) falls back to sampling, with
one warning. Timeouts, retries with exponential backoff on
429/5xx, malformed replies and timeouts, and concurrent requests for a batch. An unreachable server
or an unknown model fails at construction, with the URL and the model in the message. The API key is
read from an environment variable and never logged, cached or written anywhere.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import warnings
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.planners.llm import LLMPlanner, PlannerError, distribution_from_samples
from teacher_wrappers.prompt import chat_messages, completion_prompt
from teacher_wrappers.styles import TextStyle

RETRY_STATUS = {429, 500, 502, 503, 504}
UNSUPPORTED_STATUS = {400, 404, 405, 422, 501}  # a server that does not know echo/logprobs or /completions


class _ScoringUnsupported(Exception):
    """The server cannot score plans: the planner samples instead."""


class OpenAIPlanner(LLMPlanner):
    """Plans from an OpenAI-compatible server at `base_url` (e.g. http://localhost:8000/v1)."""

    name = "openai"
    backend = "openai"

    def __init__(self, base_url: str = "http://localhost:8000/v1", model: str = "", mode: str = "sample",
                 n: int = 10, temperature: float = 1.0, max_new_tokens: int = 40, seed: int = 0,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0, max_retries: int = 3,
                 backoff: float = 0.5, concurrency: int = 8, cache=None, task: str | None = None):
        if not model:
            raise ValueError("the openai planner needs a model name (--model)")
        super().__init__(model, mode, n, temperature, max_new_tokens, seed, cache)
        self.base_url = base_url.rstrip("/")
        self._api_key_env = api_key_env
        self.timeout, self.max_retries, self.backoff, self.concurrency = timeout, max_retries, backoff, concurrency
        self._fallback_lock = threading.Lock()
        self._check_server()

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

    def _request(self, path: str, payload: dict | None = None, unsupported: set[int] = frozenset()) -> dict:
        """One call with retries; returns the decoded JSON reply. Statuses in `unsupported` raise
        _ScoringUnsupported."""
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
                if error.code in unsupported:
                    raise _ScoringUnsupported(f"HTTP {error.code} on {path}") from error
                if error.code in RETRY_STATUS:
                    continue
                raise PlannerError(f"{self._where()} answered {path} with HTTP {error.code}: "
                                   f"{error.read()[:300].decode(errors='replace')}") from error
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

    def _answer(self, texts: list[str], style: TextStyle) -> list[PlanDistribution]:
        start = time.perf_counter()
        answer_one = self._sample if self.mode == "sample" else self._score
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(texts)))) as pool:
            answers = list(pool.map(answer_one, texts, [style] * len(texts)))
        self.live_seconds += time.perf_counter() - start
        return answers

    def _chat(self, text: str, n: int, style: TextStyle) -> list[str]:
        reply = self._request("/chat/completions", {
            "model": self.model, "messages": chat_messages(text, style), "n": n, "temperature": self.temperature,
            "max_tokens": self.max_new_tokens, "seed": self.seed})
        try:
            return [str(choice["message"]["content"] or "") for choice in reply["choices"]]
        except (KeyError, TypeError) as error:
            raise PlannerError(f"{self._where()}: chat reply without choices/message/content: "
                               f"{json.dumps(reply)[:300]}") from error

    def _sample(self, text: str, style: TextStyle) -> PlanDistribution:
        answers: list[str] = []
        while len(answers) < self.n:  # some servers ignore n and return one choice per request
            answers += self._chat(text, self.n - len(answers), style)
        return distribution_from_samples(answers[: self.n])

    def _score(self, text: str, style: TextStyle) -> PlanDistribution:
        prompt = completion_prompt(text, style)
        plans = style.admissible_plans(text)
        scores = []
        for plan in plans:
            # max_tokens 1, not 0: servers that generate before echoing (transformers serve) refuse 0
            payload = {"model": self.model, "prompt": f"{prompt} {plan}", "max_tokens": 1, "echo": True,
                       "logprobs": 1, "temperature": 0}
            try:
                reply = self._request("/completions", payload, unsupported=UNSUPPORTED_STATUS)
            except _ScoringUnsupported as error:
                return self._sample_instead(text, style, str(error))
            score = _continuation_logprob(reply, len(prompt), len(payload["prompt"]))
            if score is None:
                return self._sample_instead(text, style, "its completions carry no prompt logprobs")
            scores.append(score)
        top = max(scores)
        weights = [math.exp(score - top) for score in scores]
        return [(plan, weight / sum(weights)) for plan, weight in zip(plans, weights)]

    def _sample_instead(self, text: str, style: TextStyle, why: str) -> PlanDistribution:
        """Score mode on a server that cannot score: warn once (texts are answered concurrently), then sample."""
        with self._fallback_lock:
            if self.mode == "score":
                warnings.warn(f"{self._where()} cannot score plans ({why}); the openai planner samples "
                              f"{self.n} answers per text instead", stacklevel=2)
                self.mode = "sample"
        return self._sample(text, style)


def _continuation_logprob(reply: dict, prompt_chars: int, echoed_chars: int) -> float | None:
    """Sum of the logprobs of the echoed tokens between the prompt and the end of the echoed text (the
    generated token after it does not count), or None if the server gave none."""
    try:
        logprobs = reply["choices"][0]["logprobs"]
        offsets, values = logprobs["text_offset"], logprobs["token_logprobs"]
    except (KeyError, IndexError, TypeError):
        return None
    picked = [value for offset, value in zip(offsets, values)
              if prompt_chars <= offset < echoed_chars and value is not None]
    return float(sum(picked)) if picked else None
