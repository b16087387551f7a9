"""Redaction, content policies and the background usage writer (real store, real thread)."""

from __future__ import annotations

import time

from memory import feedback, usage
from memory.store import Store
from tools.serve.usage import UsageWriter, apply_content_policy


def test_content_policy_none_redacted_full() -> None:
    row = {"id": "r", "system_prompt": "Reply to bob@example.com", "response": "call 555-123-4567",
           "messages": [{"role": "user", "content": "my id is 98765432"}]}
    none = apply_content_policy(row, "none")
    assert none["system_prompt"] is None and none["messages"] is None and none["response"] is None
    # The hash survives so repeated system prompts can still be counted without their text.
    assert none["system_hash"] == apply_content_policy(row, "full")["system_hash"] is not None
    red = apply_content_policy(row, "redacted")
    assert red["system_prompt"] == "Reply to [email]"
    assert red["messages"] == [{"role": "user", "content": "my id is [number]"}]
    assert "[phone]" in red["response"]
    assert apply_content_policy(row, "full")["messages"] == row["messages"]


def test_writer_flushes_every_row_and_feedback_on_close(workspace) -> None:
    writer = UsageWriter(workspace.db_path, log_content="full", batch=7).start()
    for i in range(50):
        writer.log_request({"id": f"r{i}", "ts": time.time(), "status": "ok", "messages": []})
    writer.log_feedback({"response_id": "r3", "rating": 1, "correction": None, "comment": None,
                         "key_id": None})
    assert writer.flush(timeout=30)
    writer.close()
    store = Store(workspace.db_path)
    assert len(usage.usage_rows(store)) == 50
    assert [f["response_id"] for f in feedback.feedback_rows(store)] == ["r3"]
    assert writer.written == 51 and writer.dropped == 0
    store.close()


def test_full_buffer_drops_and_counts_instead_of_blocking(workspace) -> None:
    writer = UsageWriter(workspace.db_path, buffer=3)  # not started: nothing drains the buffer
    started = time.monotonic()
    for i in range(10):
        writer.log_request({"id": f"r{i}", "ts": time.time(), "status": "ok"})
    assert time.monotonic() - started < 1.0
    assert writer.dropped == 7
    writer.start()
    writer.close()
    store = Store(workspace.db_path)
    assert len(usage.usage_rows(store)) == 3
    store.close()
