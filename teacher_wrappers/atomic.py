"""Atomic file writes: a reader (or a rerun after a crash) sees the old file or the new one, never half of one.

Kept apart from teacher_wrappers.training (which re-exports them) so that what writes results without training,
such as a sweep's teacher-alone runs, does not import torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path` (same suffix, so writers that infer the format work); on success
    it replaces `path` in one step, on failure it is removed. A reader (or a rerun after a crash) sees the
    old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as handle:  # on disk before the rename, so a power cut cannot leave it empty
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
