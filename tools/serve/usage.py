"""Off-request-path usage logging: content redaction and a background writer with a bounded buffer."""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from memory import feedback, usage
from memory.store import Store
from tools.data.pii import scrub_pii

log = logging.getLogger("ingrain.serve")

LOG_CONTENT_MODES = ("none", "redacted", "full")


def split_chat(chat: list[dict[str, str]]) -> tuple[str | None, list[dict[str, str]] | None]:
    """A usage row's `system_prompt` (the system messages joined by a blank line) and `messages` (the rest)."""
    system = "\n\n".join(m["content"] for m in chat if m["role"] == "system") or None
    return system, [m for m in chat if m["role"] != "system"] or None


def apply_content_policy(row: dict[str, Any], mode: str) -> dict[str, Any]:
    """Drop, redact or keep the system prompt, messages and response of a usage row."""
    out = dict(row)
    system = out.get("system_prompt")
    out["system_hash"] = usage.system_hash(system)
    if mode == "full":
        return out
    if mode == "none":
        out.update(system_prompt=None, messages=None, response=None)
        return out
    if system:
        out["system_prompt"] = scrub_pii(system)
    if out.get("messages"):
        out["messages"] = [{**m, "content": scrub_pii(m.get("content") or "")} for m in out["messages"]]
    if out.get("response"):
        out["response"] = scrub_pii(out["response"])
    return out


class UsageWriter:
    """One thread that owns its own store connection and writes usage and feedback rows in batches.

    The request path only does a non-blocking `put`; when the buffer is full the row is counted in
    `dropped` and logged, because stalling requests behind a slow disk is worse than a missing row.
    """

    def __init__(self, db_path: Path, *, log_content: str = "redacted", buffer: int = 10_000,
                 batch: int = 256) -> None:
        self.db_path = Path(db_path)
        self.log_content = log_content
        self.batch = batch
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=buffer)
        self._thread = threading.Thread(target=self._run, name="ingrain-usage-writer", daemon=True)
        self._idle = threading.Condition()
        self._pending = 0

    def start(self) -> UsageWriter:
        self._thread.start()
        return self

    def log_request(self, row: dict[str, Any]) -> None:
        self._put(("usage", apply_content_policy(row, self.log_content)))

    def log_feedback(self, row: dict[str, Any]) -> None:
        self._put(("feedback", row))

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._idle:
                self._pending -= 1
                self.dropped += 1
            log.warning("usage buffer full: dropped a %s row (%d dropped so far)", item[0], self.dropped)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every row handed over so far is in the database."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is buffered, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        with Store(self.db_path) as store:
            stop = False
            while not stop:
                items = [self._queue.get()]
                while len(items) < self.batch:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = None in items
                real = [i for i in items if i is not None]
                self._write(store, real)
                with self._idle:
                    self._pending -= len(real)
                    self._idle.notify_all()

    def _write(self, store: Store, items: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            usage.log_requests(store, [row for kind, row in items if kind == "usage"])
            for kind, row in items:
                if kind == "feedback":
                    feedback.add_feedback(store, **row)
            self.written += len(items)
        except Exception:
            # A failed batch must not kill the writer: later rows still get written.
            log.exception("could not write %d usage rows", len(items))
            self.dropped += len(items)
