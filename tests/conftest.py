import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """`--dist loadgroup` (pyproject.toml) sends the tests of one xdist_group to one worker, so that a module
    fixture (a server, a Ray cluster, finished runs) is made once. pytest-xdist marks a test's group by appending
    `@<group>` to its node id, through `item._nodeid`, which pytest >= 9.2 no longer reads (the id is `item._id`):
    there every test would be its own unit, and a group's fixture made again in each worker, or again after every
    test of another module. Here the suffix is set where this pytest keeps it (nothing to do where xdist managed)."""
    if not getattr(config.option, "loadgroup", False) or not hasattr(items[0] if items else None, "_id"):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        suffix = f"@{'_'.join(names)}"
        if names and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)


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


@pytest.fixture(scope="session")
def gguf_models(tmp_path_factory):
    """GGUF models converted for transformers (SmolLM2's: half a minute, once a session) go to a temporary
    folder, not into the home directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEACHER_WRAPPERS_MODELS", str(tmp_path_factory.mktemp("models")))
        yield
