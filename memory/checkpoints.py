"""LangGraph's SQLite checkpointer, one database per run so a damaged file never touches other runs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from memory.errors import StoreError


@contextmanager
def run_checkpointer(path: Path) -> Iterator[SqliteSaver]:
    """Open (creating if needed) the checkpoint database at `path`; fail clearly if it is damaged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        status = conn.execute("PRAGMA quick_check").fetchone()[0]
        if status != "ok":
            raise sqlite3.DatabaseError(status)
        saver = SqliteSaver(conn)
        saver.setup()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"The checkpoint database {path} is damaged ({exc}). This run cannot be continued from its "
            "checkpoint; other runs are not affected. Start it again with `ingrain run`.") from exc
    try:
        yield saver
    finally:
        conn.close()
