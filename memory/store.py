"""The one SQLite store (sqlite-utils): runs, trace events, datasets, models, lessons.

Every write is a single transaction, so a killed process never leaves a half-written row.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from memory.errors import StoreError
from memory.schema import MIGRATIONS
from memory.workspace import Workspace

JSON_COLUMNS = {"spec", "data", "report", "config", "metrics"}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        if isinstance(out[key], str):
            with contextlib.suppress(json.JSONDecodeError):
                out[key] = json.loads(out[key])
    return out


def _encode(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


class Store:
    """Small verbs over `ingrain.db`; nothing else in ingrain opens the database."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.migrate()

    @classmethod
    def open(cls, workspace: Workspace | None = None) -> Store:
        """The store of `workspace` (default: the one `INGRAIN_HOME` names)."""
        ws = (workspace or Workspace.from_env()).ensure()
        return cls(ws.db_path)

    def migrate(self) -> int:
        """Apply the migrations this database has not seen yet; return the schema version."""
        conn = self.db.conn
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path} is not a readable SQLite database ({exc}); "
                             "move it away and ingrain will start a new one.") from exc
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, sql.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: all of it lands, or none of it."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------
    def create_run(self, goal: str, policy: str, spec: dict[str, Any] | None = None, kind: str = "run") -> int:
        """A new run (kind `run`) or nightly (kind `nightly`), status created."""
        now = time.time()
        with self.transaction():
            table = self.db["runs"].insert(
                {"goal": goal, "policy": policy, "spec": _encode(spec) if spec else None, "kind": kind,
                 "status": "created", "created": now, "updated": now}
            )
        return int(table.last_pk)

    def run(self, run_id: int) -> dict[str, Any]:
        try:
            return _decode(self.db["runs"].get(int(run_id)))
        except (sqlite_utils.db.NotFoundError, ValueError):
            raise StoreError(f"No run {run_id!r}; `ingrain runs` lists the runs there are.") from None

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Runs, newest first."""
        rows = self.db["runs"].rows_where(order_by="id desc", limit=limit)
        return [_decode(r) for r in rows]

    def update_run(self, run_id: int, **fields: Any) -> None:
        for key in JSON_COLUMNS & fields.keys():
            if fields[key] is not None and not isinstance(fields[key], str):
                fields[key] = _encode(fields[key])
        fields["updated"] = time.time()
        with self.transaction():
            self.db["runs"].update(int(run_id), fields)

    def claim_run(self, run_id: int, pid: int | None = None) -> bool:
        """Mark the run as driven by `pid`; False if another live process already drives it."""
        pid = pid or os.getpid()
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT owner_pid, status FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                conn.execute("ROLLBACK")
                raise StoreError(f"No run {run_id!r}; `ingrain runs` lists the runs there are.")
            owner, status = row
            if status == "running" and owner and owner != pid and process_alive(owner):
                conn.execute("ROLLBACK")
                return False
            conn.execute("UPDATE runs SET owner_pid = ?, status = 'running', updated = ? WHERE id = ?",
                         (pid, time.time(), int(run_id)))
            conn.execute("COMMIT")
            return True
        except StoreError:
            raise
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def release_run(self, run_id: int, status: str, **fields: Any) -> None:
        self.update_run(run_id, status=status, owner_pid=None, **fields)

    # -- trace events -------------------------------------------------------
    def record_event(self, run_id: int, kind: str, *, node: str | None = None, name: str | None = None,
                     data: Any = None, duration_s: float | None = None) -> int:
        with self.transaction():
            table = self.db["events"].insert(
                {"run_id": int(run_id), "ts": time.time(), "node": node, "kind": kind, "name": name,
                 "data": _encode(data) if data is not None else None, "duration_s": duration_s}
            )
        return int(table.last_pk)

    def events(self, run_id: int, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        where, args = "run_id = ?", [int(run_id)]
        if kinds:
            kinds = list(kinds)
            where += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += kinds
        return [_decode(r) for r in self.db["events"].rows_where(where, args, order_by="id")]

    # -- datasets -----------------------------------------------------------
    def record_dataset(self, dataset_id: str, path: str, *, run_id: int | None = None,
                       counts: tuple[int, int, int] = (0, 0, 0), report: Any = None) -> None:
        with self.transaction():
            self.db["datasets"].upsert(
                {"id": dataset_id, "run_id": run_id, "path": path, "n_train": counts[0], "n_val": counts[1],
                 "n_test": counts[2], "report": _encode(report) if report is not None else None,
                 "created": time.time()}, pk="id")

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        try:
            return _decode(self.db["datasets"].get(dataset_id))
        except sqlite_utils.db.NotFoundError:
            raise StoreError(f"No dataset {dataset_id!r} in the store.") from None

    # -- model registry -----------------------------------------------------
    def register_model(self, name: str, *, base: str, kind: str, path: str, run_id: int | None = None,
                       dataset_id: str | None = None, config: Any = None, metrics: Any = None,
                       verdict: str | None = None, parent: str | None = None) -> None:
        """Register a candidate version. Call only after its files are complete on disk."""
        if not Path(path).exists():
            raise StoreError(f"Refusing to register {name}: {path} does not exist.")
        with self.transaction():
            self.db["models"].insert(
                {"name": name, "run_id": run_id, "base": base, "kind": kind, "path": str(path),
                 "dataset_id": dataset_id, "config": _encode(config), "metrics": _encode(metrics),
                 "verdict": verdict, "parent": parent, "status": "candidate", "created": time.time()},
                pk="name", replace=True)

    def update_model(self, name: str, **fields: Any) -> None:
        for key in JSON_COLUMNS & fields.keys():
            if fields[key] is not None and not isinstance(fields[key], str):
                fields[key] = _encode(fields[key])
        with self.transaction():
            self.db["models"].update(name, fields)

    def model(self, name: str) -> dict[str, Any]:
        try:
            return _decode(self.db["models"].get(name))
        except sqlite_utils.db.NotFoundError:
            known = ", ".join(m["name"] for m in self.models()) or "none yet"
            raise StoreError(f"No model version {name!r} (known: {known}).") from None

    def models(self) -> list[dict[str, Any]]:
        return [_decode(r) for r in self.db["models"].rows_where(order_by="created desc")]

    def production_model(self) -> dict[str, Any] | None:
        rows = list(self.db["models"].rows_where("status = 'production'", limit=1))
        return _decode(rows[0]) if rows else None

    def promote(self, name: str) -> dict[str, Any]:
        """Make `name` the production version (its files must exist); the old one becomes archived."""
        target = self.model(name)
        if not Path(target["path"]).exists():
            raise StoreError(f"Cannot promote {name}: its files at {target['path']} are missing; "
                             "production is unchanged.")
        now = time.time()
        with self.transaction():
            self.db.conn.execute("UPDATE models SET status = 'archived' WHERE status = 'production'")
            self.db.conn.execute("UPDATE models SET status = 'production', promoted = ? WHERE name = ?",
                                 (now, name))
        return self.model(name)

    def rollback(self) -> dict[str, Any]:
        """Make the previously promoted version production again."""
        current = self.production_model()
        rows = list(self.db["models"].rows_where(
            "status = 'archived' AND promoted IS NOT NULL", order_by="promoted desc", limit=1))
        if not rows:
            raise StoreError("Nothing to roll back to: no version was in production before the current one.")
        previous = rows[0]["name"]
        with self.transaction():
            if current:
                self.db.conn.execute("UPDATE models SET status = 'candidate', promoted = NULL WHERE name = ?",
                                     (current["name"],))
            self.db.conn.execute("UPDATE models SET status = 'production' WHERE name = ?", (previous,))
        return self.model(previous)

    # -- lessons ------------------------------------------------------------
    def add_lesson(self, topic: str, text: str, *, run_id: int | None = None, data: Any = None) -> None:
        with self.transaction():
            self.db["lessons"].insert({"run_id": run_id, "topic": topic, "text": text,
                                       "data": _encode(data) if data is not None else None,
                                       "created": time.time()})

    def lessons(self, topic: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, args = ("topic = ?", [topic]) if topic else (None, None)
        return [_decode(r) for r in self.db["lessons"].rows_where(where, args, order_by="id desc",
                                                                  limit=limit)]


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
