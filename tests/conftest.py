import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def gappy_table(tmp_path_factory):
    """The recorded SimpleDoorKey table without the texts that mention a key (seen or held): the teacher
    soon meets texts it lacks (they become unknown texts, never cache hits)."""
    from teacher_wrappers.planners.recorded import default_table_path

    data = json.loads(default_table_path().read_text())
    data["tables"] = {"SimpleDoorKey": {text: answer for text, answer in data["tables"]["SimpleDoorKey"].items()
                                        if "<key>" not in text}}
    path = tmp_path_factory.mktemp("table") / "gappy.json"
    path.write_text(json.dumps(data))
    return str(path)
