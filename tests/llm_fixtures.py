"""A tiny randomly initialised causal LM and a fake OpenAI-compatible server, for LLM planner tests."""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from teacher_wrappers.styles.paper import EXAMPLE, SYSTEM

# each message ends with the end-of-turn token, as chat models' templates do (score mode scores it)
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}[EOS]\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:\n{% endif %}")
_TOKEN = re.compile(r"\[EOS\]| ?\w+| ?[^\w\s]|\s")
CANDIDATES = (" red", " green", " blue", " and", ",", "[EOS]")  # what the fake model can generate


def build_tiny_model(folder: Path) -> Path:
    """Save a 2-layer Llama with a word-level tokenizer over the prompt's words; load it back by path."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = " ".join([SYSTEM, *EXAMPLE, "Agent sees holds nothing key door goal door1 door2 color1 color2 "
                      "explore go to pick up drop open Plan system user assistant"])
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[BOS]", "[EOS]"])}
    for piece, _ in pre_tokenizers.Whitespace().pre_tokenize_str(words):
        vocab.setdefault(piece, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def fake_tokenize(text: str) -> list[str]:
    """The fake server's tokens: words and punctuation with their leading space, [EOS], single spaces."""
    pieces = _TOKEN.findall(text)
    assert "".join(pieces) == text
    return pieces


def fake_logprob(previous: str, token: str) -> float:
    """The fake server's model: the log-probability of `token` after `previous`, a fixed pseudo-random number."""
    return -0.01 - (zlib.crc32(f"{previous}\x00{token}".encode()) % 997) / 200


def fake_true_logprobs(pieces: list[str]) -> list[float | None]:
    return [None] + [fake_logprob(pieces[i - 1], pieces[i]) for i in range(1, len(pieces))]


def fake_generate(previous: str, count: int) -> list[str]:
    """Greedy tokens after `previous`."""
    out = []
    for _ in range(count):
        previous = max(CANDIDATES, key=lambda token, prev=previous: fake_logprob(prev, token))
        out.append(previous)
    return out


class FakeServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 whose behaviour a test sets in `self.mode`.

    Its completions endpoint is a tiny deterministic language model (fake_tokenize, fake_logprob): greedy
    generation with logprobs, and echoed prompt logprobs. Modes: good, garbage, malformed, flaky (a 500
    first, then good), slow, no_logprobs, shifted_echo (each echoed token carries the log-probability of the
    token after it), misaligned_echo (each echoed token's value is read from the distribution of the next
    position: llama-cpp-python's echo for prompts without a BOS token), null_logprob (the echoed " up" tokens
    have none), no_echo (HTTP 400: echo is not supported), too_long (HTTP 400: longer than the context),
    empty_choices, ignores_n (one choice per chat request, its answer chosen by the seed), capped_n (at most
    4 choices). `chat_prompt_logprobs` makes chat completions accept vLLM's `prompt_logprobs` (the fake
    renders CHAT_TEMPLATE itself). With `fail_after` set, every request after that many answers HTTP 500;
    with `unsupported_after`, every scoring request after that many answers HTTP 501.
    """

    SEED_ANSWERS = ("Plan: go to <key>, pick up <key>", "Plan: explore", "Plan: go to <door>, open <door>")

    def __init__(self, model: str = "fake-model", answer: str = "Plan: go to <key>, pick up <key>"):
        self.model, self.answer, self.mode = model, answer, "good"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.delay = 0.0
        self.fail_after: int | None = None
        self.unsupported_after: int | None = None
        self.scoring_requests = 0
        self.chat_prompt_logprobs = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"data": [{"id": server.model, "object": "model"}]})

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, **payload})
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    count = len(server.requests)
                try:
                    time.sleep(server.delay)
                    server.respond(self, payload, count)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def sample_requests(self) -> list[dict]:
        """The chat requests that asked for sampled answers (not the score-mode probes)."""
        return [r for r in self.requests if r["path"].endswith("/chat/completions") and "n" in r]

    def respond(self, handler, payload, count):
        if self.fail_after is not None and count > self.fail_after:
            return handler._send(500, {"error": "internal error"})
        if self.mode == "malformed":
            return handler._send(200, b"{not json")
        if self.mode == "flaky" and count == 1:
            return handler._send(500, {"error": "overloaded"})
        if self.mode == "slow":
            time.sleep(1.0)
        scoring = payload.get("echo") or "prompt_logprobs" in payload
        if scoring:
            with self.lock:
                self.scoring_requests += 1
                if self.unsupported_after is not None and self.scoring_requests > self.unsupported_after:
                    return handler._send(501, {"error": "not implemented"})
        if handler.path.endswith("/completions") and "prompt" in payload:
            if self.mode == "too_long":
                return handler._send(400, {"error": {"message": "This model's maximum context length is 64 tokens. "
                                                                "However, you requested 900 tokens.",
                                                     "type": "invalid_request_error"}})
            if self.mode == "no_echo" and payload.get("echo"):
                return handler._send(400, {"error": {"message": "echo is not supported by this server"}})
            return handler._send(200, self._completion(payload))
        if "prompt_logprobs" in payload and self.chat_prompt_logprobs:
            return handler._send(200, self._chat_prompt_logprobs(payload))
        if self.mode == "empty_choices":
            return handler._send(200, {"choices": []})
        if payload.get("logprobs") and payload.get("temperature") == 0 and self.chat_prompt_logprobs:
            # the probe: greedy after the rendered prompt, with logprobs
            previous = fake_tokenize(self.render(payload["messages"], add_generation_prompt=True))[-1]
            tokens = fake_generate(previous, payload["max_tokens"])
            values = [fake_logprob(prev, token) for prev, token in zip([previous, *tokens], tokens)]
            return handler._send(200, {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                            "content": "".join(tokens)},
                                                    "logprobs": {"content": [{"token": t, "logprob": v}
                                                                             for t, v in zip(tokens, values)]}}]})
        content = "I like turtles." if self.mode == "garbage" else self.answer
        n = payload.get("n", 1)
        if self.mode == "ignores_n":
            n, content = 1, self.SEED_ANSWERS[payload["seed"] % len(self.SEED_ANSWERS)]
        elif self.mode == "capped_n":
            n = min(n, 4)
        choices = [{"index": i, "message": {"role": "assistant", "content": content}} for i in range(n)]
        return handler._send(200, {"choices": choices})

    def _completion(self, payload):
        """Greedy generation after the prompt; with echo, the prompt's tokens and their logprobs first."""
        if self.mode == "no_logprobs":
            return {"choices": [{"text": payload["prompt"], "logprobs": None}]}
        prompt = fake_tokenize(payload["prompt"])
        generated = fake_generate(prompt[-1], payload.get("max_tokens") or 1)
        pieces = prompt + generated
        values = fake_true_logprobs(pieces)
        if not payload.get("echo"):
            return {"choices": [{"text": "".join(generated), "logprobs": {
                "tokens": generated, "token_logprobs": values[len(prompt):]}}]}
        if self.mode == "shifted_echo":
            values = [None] + values[2:] + [None]
        elif self.mode == "misaligned_echo":
            values = [None] + [fake_logprob(piece, piece) for piece in pieces[1:]]
        elif self.mode == "null_logprob":
            values = [None if piece == " up" else value for piece, value in zip(pieces, values)]
        offsets = [sum(map(len, pieces[:i])) for i in range(len(pieces))]
        return {"choices": [{"text": "".join(pieces), "logprobs": {
            "tokens": pieces, "text_offset": offsets, "token_logprobs": values}}]}

    def _chat_prompt_logprobs(self, payload):
        """vLLM's chat completions with prompt_logprobs: the fake renders the chat template itself."""
        messages = payload["messages"]
        rendered = self.render(messages, payload.get("add_generation_prompt", True))
        if payload.get("continue_final_message"):
            rendered = rendered[: rendered.rindex(messages[-1]["content"]) + len(messages[-1]["content"])]
        pieces = fake_tokenize(rendered)
        values = fake_true_logprobs(pieces)
        entries = [None] + [{str(zlib.crc32(piece.encode()) % 50000): {"logprob": value, "rank": 1,
                                                                       "decoded_token": piece}}
                            for piece, value in zip(pieces[1:], values[1:])]
        generated = fake_generate(pieces[-1], 1)
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(generated)}}],
                "prompt_logprobs": entries}

    @staticmethod
    def render(messages, add_generation_prompt):
        from jinja2 import Template

        return Template(CHAT_TEMPLATE).render(messages=messages, add_generation_prompt=add_generation_prompt)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
