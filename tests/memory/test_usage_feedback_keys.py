"""The usage log, feedback and API-key verbs over a real store."""

from __future__ import annotations

import time

import pytest

from memory import feedback, keys, usage
from memory.errors import StoreError
from memory.store import Store


@pytest.fixture
def store(workspace) -> Store:
    s = Store.open(workspace)
    yield s
    s.close()


def _row(rid: str, ts: float, **kw) -> dict:
    return {"id": rid, "ts": ts, "model": "m1", "status": "ok", "prompt_tokens": 10, "completion_tokens": 5,
            "latency_s": 0.5, "messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 5},
            **kw}


def test_logged_rows_come_back_newest_first_with_json_decoded_and_filters(store: Store) -> None:
    now = time.time()
    assert usage.log_requests(store, [_row("a", now - 10), _row("b", now, model="m2", stream=True),
                                      _row("c", now - 5, status="queue_full", completion_tokens=0)]) == 3
    rows = usage.usage_rows(store)
    assert [r["id"] for r in rows] == ["b", "c", "a"]
    assert rows[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert rows[0]["params"] == {"max_tokens": 5}
    assert rows[0]["stream"] is True and rows[2]["stream"] is False
    assert [r["id"] for r in usage.usage_rows(store, model="m2")] == ["b"]
    assert [r["id"] for r in usage.usage_rows(store, status="queue_full")] == ["c"]
    assert [r["id"] for r in usage.usage_rows(store, since=now - 6)] == ["b", "c"]
    assert usage.usage_row(store, "a")["model"] == "m1"
    assert usage.usage_row(store, "nope") is None


def test_summary_counts_statuses_tokens_and_latency_of_served_requests(store: Store) -> None:
    now = time.time()
    usage.log_requests(store, [_row(f"r{i}", now + i, latency_s=float(i)) for i in range(1, 11)]
                       + [_row("x", now, status="queue_full", latency_s=99.0, completion_tokens=0)])
    summary = usage.usage_summary(store)
    assert summary["requests"] == 11
    assert summary["by_status"] == {"ok": 10, "queue_full": 1}
    assert summary["prompt_tokens"] == 110 and summary["completion_tokens"] == 50
    # Refused requests do not distort the latency of served ones.
    assert summary["latency_p50_s"] in (5.0, 6.0) and summary["latency_p95_s"] == 10.0


def test_feedback_is_validated_and_counted(store: Store) -> None:
    usage.log_requests(store, [_row("a", time.time())])
    feedback.add_feedback(store, "a", rating=-1, correction="the right answer")
    feedback.add_feedback(store, "a", rating=1)
    with pytest.raises(StoreError, match="out of range"):
        feedback.add_feedback(store, "a", rating=5)
    with pytest.raises(StoreError, match="rating .* or a corrected answer"):
        feedback.add_feedback(store, "a")
    rows = feedback.feedback_rows(store, "a")
    assert [(r["rating"], r["correction"]) for r in rows] == [(-1, "the right answer"), (1, None)]
    assert usage.usage_summary(store)["feedback"] == {"count": 2, "by_rating": {"-1": 1, "1": 1},
                                                      "corrections": 1}


def test_keys_are_stored_only_as_hashes_and_verify_until_revoked(store: Store, workspace) -> None:
    key = keys.create_key(store, "laptop")
    other = keys.create_key(store, "ci")
    assert key.startswith(keys.KEY_PREFIX) and key != other and len(key) > 40
    assert key.encode() not in workspace.db_path.read_bytes()
    listed = keys.api_keys(store)
    assert [k["name"] for k in listed] == ["laptop", "ci"] and "hash" not in listed[0]
    assert key.startswith(listed[0]["prefix"])
    found = keys.verify_key(store, key)
    assert found is not None and found["name"] == "laptop"
    assert keys.verify_key(store, key + "x") is None
    assert keys.verify_key(store, "") is None
    assert keys.live_key_hashes(store)[keys.hash_key(other)] == listed[1]["id"]
    keys.revoke_key(store, found["id"])
    assert keys.verify_key(store, key) is None
    assert keys.verify_key(store, other) is not None
    with pytest.raises(StoreError):
        keys.revoke_key(store, found["id"])
    with pytest.raises(StoreError, match="name"):
        keys.create_key(store, "  ")


def test_feedback_by_response_folds_to_the_latest_rating_and_correction(tmp_path) -> None:
    from memory.feedback import add_feedback, feedback_by_response
    from memory.usage import log_requests, system_hash, usage_rows_by_id

    store = Store(tmp_path / "f.db")
    log_requests(store, [{"id": f"r{i}", "status": "ok", "messages": [{"role": "user", "content": "hi"}]}
                         for i in range(3)])
    add_feedback(store, "r0", rating=-1, correction="first")
    add_feedback(store, "r0", rating=1, correction="second")
    add_feedback(store, "r1", correction="only a fix")
    folded = feedback_by_response(store, ["r0", "r1", "r2"])
    assert (folded["r0"].rating, folded["r0"].correction, folded["r0"].ratings) == (1, "second", {-1, 1})
    assert (folded["r1"].rating, folded["r1"].correction) == (None, "only a fix") and "r2" not in folded
    assert feedback_by_response(store).keys() == folded.keys()
    rows = usage_rows_by_id(store, ["r2", "nope", "r0"])
    assert sorted(rows) == ["r0", "r2"] and rows["r0"]["messages"] == [{"role": "user", "content": "hi"}]
    assert system_hash("Be brief.") == system_hash("Be brief.") != system_hash("Be kind.")
    assert system_hash(None) is None and system_hash("") is None
    store.close()
