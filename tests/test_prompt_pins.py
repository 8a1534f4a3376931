"""The prompts shown to LLM planners and the keys of the answer cache are pinned, byte for byte.

Users' answer caches and recorded tables hold answers to these exact prompts, under these exact keys:
a change here invalidates them, so it must be deliberate (and bump the prompt version). The expected
values in tests/data/prompts.json were written by tests/data/make_prompts.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from teacher_wrappers.cache import AnswerCache
from teacher_wrappers.planners.llm import LLMPlanner
from teacher_wrappers.prompt import chat_messages
from teacher_wrappers.styles import get_style

EXPECTED = Path(__file__).parent / "data" / "prompts.json"

# (text style, description): every style's texts, with the suite's qualifiers (state, location, in the way).
TEXTS = [
    ("plain", "Agent sees <key>, <door>, holds <nothing>."),
    ("plain", "Agent sees <door>, holds <key>."),
    ("plain", "Agent sees <nothing>, holds <nothing>."),
    ("plain", "Agent sees <key>, <open door>, holds <nothing>."),
    ("colored", "Agent sees <color1 key>, <color2 key>, <color2 door>, holds <nothing>."),
    ("colored", "Agent sees <color1 key>, <color2 door>, holds <color2 key>."),
    ("numbered_doors", "Agent sees <key>, <door1>, <door2>, holds <nothing>."),
    ("suite", "Mission: pick up the red box. Agent sees <yellow key>, <grey ball in the way>, <locked yellow door>, "
              "holds <nothing>."),
    ("suite", "Mission: pick up the purple ball. Agent sees <purple ball in the way>, <open yellow door>, "
              "holds <yellow key>."),
    ("suite", "Mission: go to the goal. Agent sees <goal>, <lava>, holds <nothing>."),
    ("suite", "Mission: put the red ball next to the blue key. Agent sees <red ball>, <blue key>, holds <nothing>."),
    ("suite", "Mission: put the red ball next to the blue key. Agent sees <blue key>, holds <red ball>."),
    ("suite", "Mission: open the door on your left. Agent sees <closed red door on your left>, <closed blue door>, "
              "holds <nothing>."),
    ("suite", "Mission: open the red door, then open the blue door. Agent sees <open red door>, <closed blue door>, "
              "holds <nothing>."),
    ("suite", "Mission: go to the green box. Agent sees <green box>, <closed green door>, holds <grey key>."),
    ("suite", "Mission: explore. Agent sees <nothing>, holds <nothing>."),
]


class EchoLLM(LLMPlanner):
    """An LLM planner whose model always answers `explore`: what it writes to the answer cache is the key."""

    backend = "pinned"

    def _answer(self, texts, style):
        return [([("explore", 1.0)], self.settings()) for _ in texts]


def pinned(style: str, text: str, cache_dir: Path) -> dict:
    """Everything an LLM is shown for `text`, and the answer cache's keys for it in both modes."""
    keys = []
    for mode in ("sample", "score"):
        cache = AnswerCache(cache_dir / f"{mode}.sqlite")
        EchoLLM("pinned-model", mode=mode, cache=cache).plan([text], get_style(style))
        [row] = cache.rows()
        keys.append([row[column] for column in ("backend", "model", "prompt_format", "prompt", "settings")])
        cache.path.unlink()
    return {"style": style, "text": text, "chat_messages": chat_messages(text, style),
            "admissible_plans": get_style(style).admissible_plans(text),
            "cache_keys": keys}


def test_prompts_and_cache_keys_are_unchanged(tmp_path):
    expected = json.loads(EXPECTED.read_text())
    assert [(entry["style"], entry["text"]) for entry in expected] == TEXTS
    for entry, (style, text) in zip(expected, TEXTS):
        (tmp_path / text[:8]).mkdir(exist_ok=True)
        assert pinned(style, text, tmp_path / text[:8]) == entry, text
