"""A persistent SQLite cache of LLM answers: record once, replay free.

Keyed by (backend, model, prompt format, prompt, sampling settings). Safe with several processes
(AsyncVectorEnv workers, parallel training runs): WAL journal, a busy timeout, one connection per
process. Command line:

    python -m teacher_wrappers.cache list
    python -m teacher_wrappers.cache export answers.jsonl
    python -m teacher_wrappers.cache import answers.jsonl
    python -m teacher_wrappers.cache export-table table.json --backend openai --model MODEL --task ColoredDoorKey

`export-table` writes a recorded plan table, so answers recorded from a strong LLM on a GPU server
replay anywhere with `planner="recorded", planner_kwargs={"path": "table.json", "table": TASK}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
import warnings
from pathlib import Path

from teacher_wrappers.planners.base import PlanDistribution
from teacher_wrappers.styles.paper import FORMAT_VERSION

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    backend TEXT NOT NULL, model TEXT NOT NULL, prompt_format TEXT NOT NULL, prompt TEXT NOT NULL,
    settings TEXT NOT NULL, answer TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (backend, model, prompt_format, prompt, settings)
)
"""
_COLUMNS = ("backend", "model", "prompt_format", "prompt", "settings", "answer", "created")


def default_cache_path() -> Path:
    env = os.environ.get("TEACHER_WRAPPERS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "teacher_wrappers" / "answers.sqlite"


class AnswerCache:
    """get/put plan distributions by key; connections are opened per process, lazily."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection: sqlite3.Connection | None = None
        self._pid = -1

    def _db(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():  # never share a connection across fork
            try:
                self._connection = self._open()
            except sqlite3.DatabaseError as error:
                if not _corrupt(error):
                    raise sqlite3.DatabaseError(f"answer cache {self.path}: {error}") from error
                # Only a cache: keep the damaged file for inspection and start an empty one.
                aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
                    except FileNotFoundError:  # absent, or another process moved it first
                        pass
                warnings.warn(f"answer cache {self.path} is not a readable SQLite database ({error}); "
                              f"moved it to {aside} and started an empty cache", stacklevel=3)
                self._connection = self._open()
            self._pid = os.getpid()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=60000")
            connection.execute(_SCHEMA)
            connection.execute("SELECT count(*) FROM answers").fetchone()
        except sqlite3.DatabaseError:
            connection.close()
            raise
        return connection

    def _query(self, sql: str, parameters: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._db().execute(sql, parameters)
        except sqlite3.DatabaseError as error:  # damaged while open: say which file
            raise sqlite3.DatabaseError(f"answer cache {self.path}: {error}") from error

    def get(self, backend: str, model: str, prompt_format: str, prompt: str,
            settings: dict) -> PlanDistribution | None:
        row = self._query(
            "SELECT answer FROM answers WHERE backend=? AND model=? AND prompt_format=? AND prompt=? AND settings=?",
            (backend, model, prompt_format, prompt, _settings_key(settings))).fetchone()
        return [tuple(pair) for pair in json.loads(row[0])] if row else None

    def put(self, backend: str, model: str, prompt_format: str, prompt: str, settings: dict,
            answer: PlanDistribution) -> None:
        self._query("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (backend, model, prompt_format, prompt, _settings_key(settings),
                     json.dumps([list(pair) for pair in answer]), time.time()))

    def rows(self) -> list[dict]:
        cursor = self._query(f"SELECT {', '.join(_COLUMNS)} FROM answers ORDER BY created")
        return [dict(zip(_COLUMNS, row)) for row in cursor]

    def import_rows(self, rows: list[dict]) -> int:
        db = self._db()
        db.execute("BEGIN")
        for row in rows:
            db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                       tuple(row[column] for column in _COLUMNS))
        db.execute("COMMIT")
        return len(rows)

    def export_table(self, backend: str, model: str, task: str) -> dict:
        """A recorded plan table (see planners.recorded) from this cache's answers for one model."""
        table: dict[str, dict[str, float]] = {}
        for row in self.rows():  # oldest first: a later answer for the same text wins
            if row["backend"] == backend and row["model"] == model and row["prompt_format"].endswith(FORMAT_VERSION):
                table[row["prompt"]] = {plan: prob for plan, prob in json.loads(row["answer"])}
        if not table:
            raise ValueError(f"{self.path} holds no answers of backend {backend!r}, model {model!r} "
                             f"for description format {FORMAT_VERSION}")
        return {"format_version": FORMAT_VERSION, "about": f"exported from {self.path}: {backend} {model}",
                "tables": {task: table}}


def _corrupt(error: sqlite3.DatabaseError) -> bool:
    """Not a database, or a damaged one (a busy or locked database is an OperationalError: not corrupt)."""
    if isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)
    return "not a database" in str(error) or "malformed" in str(error)


def _settings_key(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teacher_wrappers.cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", help=f"cache file (default {default_cache_path()}, or $TEACHER_WRAPPERS_CACHE)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="one line per cached answer")
    export = commands.add_parser("export", help="write all entries as JSON lines")
    export.add_argument("out")
    importer = commands.add_parser("import", help="add entries from a JSON lines export")
    importer.add_argument("file")
    table = commands.add_parser("export-table", help="write a recorded plan table for one model")
    table.add_argument("out")
    table.add_argument("--backend", required=True)
    table.add_argument("--model", required=True)
    table.add_argument("--task", required=True, help="table name, e.g. SimpleDoorKey")
    args = parser.parse_args(argv)
    cache = AnswerCache(args.path)
    if args.command == "list":
        for row in cache.rows():
            top = max(json.loads(row["answer"]), key=lambda pair: pair[1], default=["", 0.0])
            print(f"{row['backend']}\t{row['model']}\t{row['prompt']}\t{top[0]!r} ({top[1]:.2f})")
    elif args.command == "export":
        with open(args.out, "w") as handle:
            for row in cache.rows():
                handle.write(json.dumps(row) + "\n")
    elif args.command == "import":
        with open(args.file) as handle:
            count = cache.import_rows([json.loads(line) for line in handle if line.strip()])
        print(f"imported {count} answers into {cache.path}")
    else:
        try:
            data = cache.export_table(args.backend, args.model, args.task)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {len(data['tables'][args.task])} texts to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
