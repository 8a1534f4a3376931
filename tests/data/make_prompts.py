"""Regenerate tests/data/prompts.json: the prompts and answer-cache keys pinned by tests/test_prompt_pins.py.

    python tests/data/make_prompts.py

Written with the teacher of main at 983a15b; rewritten on purpose when score mode got one definition for
every backend (its cache key names the scorer version and how the scores were computed, so answers of the
old scorer are not replayed; the prompts and the sample-mode keys did not change; the completions-endpoint
prompt, no longer used, is no longer pinned). Only rerun it on purpose, when the prompts or the keys change
(and the prompt version or the scorer version with them: users' caches hold answers to the old ones).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_prompt_pins import EXPECTED, TEXTS, pinned  # noqa: E402

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        entries = []
        for i, (style, text) in enumerate(TEXTS):
            (Path(folder) / str(i)).mkdir()
            entries.append(pinned(style, text, Path(folder) / str(i)))
    EXPECTED.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"wrote {len(entries)} entries to {EXPECTED}")
