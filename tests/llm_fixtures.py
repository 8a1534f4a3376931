"""A tiny randomly initialised causal LM and a fake OpenAI-compatible server, for LLM planner tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from teacher_wrappers.styles.paper import EXAMPLE, SYSTEM

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


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


class FakeServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 whose behaviour a test sets in `self.mode`.

    Modes: good, garbage, malformed, flaky (a 500 first, then good), slow, no_logprobs. With `fail_after`
    set, every request after that many answers HTTP 500 (a server that breaks down mid-run).
    """

    def __init__(self, model: str = "fake-model", answer: str = "Plan: go to <key>, pick up <key>"):
        self.model, self.answer, self.mode = model, answer, "good"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.delay = 0.0
        self.fail_after: int | None = None
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
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, handler, payload, count):
        if self.fail_after is not None and count > self.fail_after:
            return handler._send(500, {"error": "internal error"})
        if self.mode == "malformed":
            return handler._send(200, b"{not json")
        if self.mode == "flaky" and count == 1:
            return handler._send(500, {"error": "overloaded"})
        if self.mode == "slow":
            time.sleep(1.0)
        if handler.path.endswith("/completions") and "prompt" in payload:
            return handler._send(200, self._completion(payload))
        content = "I like turtles." if self.mode == "garbage" else self.answer
        choices = [{"index": i, "message": {"role": "assistant", "content": content}} for i in range(payload["n"])]
        return handler._send(200, {"choices": choices})

    def _completion(self, payload):
        """Echoed prompt logprobs: plans that fetch a key are likely, the rest are not."""
        if self.mode == "no_logprobs":
            return {"choices": [{"text": payload["prompt"], "logprobs": None}]}
        text = payload["prompt"]
        prompt_end = text.rindex("Plan:") + len("Plan:")
        plan = text[prompt_end:]
        value = -0.1 if "pick up" in plan else -3.0
        # then one generated token (max_tokens 1), which must not count towards the plan's score
        return {"choices": [{"text": text + " x", "logprobs": {"text_offset": [0, prompt_end, len(text)],
                                                              "token_logprobs": [None, value, -50.0]}}]}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
