"""Store verbs for the serving endpoint: the per-request usage log, feedback and hashed API keys."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from memory.errors import StoreError
from memory.store import Store

KEY_PREFIX = "ingr-"
USAGE_COLUMNS = (
    "id", "ts", "model", "key_id", "status", "finish_reason", "stream", "system_prompt", "system_hash",
    "messages", "response", "prompt_tokens", "completion_tokens", "latency_s", "ttft_s", "params", "error",
)
_USAGE_JSON = ("messages", "params")


def hash_key(key: str) -> str:
    """The sha256 a key is stored and looked up by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# -- usage log --------------------------------------------------------------
def log_requests(store: Store, rows: Iterable[dict[str, Any]]) -> int:
    """Insert usage rows in one transaction; a row whose id is already logged is replaced."""
    batch = []
    for row in rows:
        clean = {k: row.get(k) for k in USAGE_COLUMNS}
        for key in _USAGE_JSON:
            if clean[key] is not None and not isinstance(clean[key], str):
                clean[key] = json.dumps(clean[key], ensure_ascii=False, default=str)
        clean["stream"] = int(bool(clean["stream"]))
        clean["ts"] = clean["ts"] or time.time()
        batch.append(clean)
    if batch:
        with store._tx():
            store.db["usage"].insert_all(batch, pk="id", replace=True)
    return len(batch)


def _decode_usage(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in _USAGE_JSON:
        if isinstance(out.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):
                out[key] = json.loads(out[key])
    out["stream"] = bool(out.get("stream"))
    return out


def usage_rows(store: Store, *, limit: int | None = 1000, since: float | None = None,
               model: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """Logged requests, newest first, optionally filtered by time, model version and status."""
    where, args = _filters(since, model, status)
    rows = store.db["usage"].rows_where(where, args, order_by="ts desc, rowid desc", limit=limit)
    return [_decode_usage(r) for r in rows]


def usage_row(store: Store, response_id: str) -> dict[str, Any] | None:
    rows = list(store.db["usage"].rows_where("id = ?", [response_id], limit=1))
    return _decode_usage(rows[0]) if rows else None


def _filters(since: float | None, model: str | None, status: str | None) -> tuple[str | None, list[Any]]:
    clauses, args = [], []
    for column, op, value in (("ts", ">=", since), ("model", "=", model), ("status", "=", status)):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            args.append(value)
    return (" AND ".join(clauses) or None), args


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 4)


def usage_summary(store: Store, *, since: float | None = None) -> dict[str, Any]:
    """Totals over the log: requests by status and model, tokens, latency percentiles of served requests."""
    where, args = _filters(since, None, None)
    sql = "SELECT status, model, prompt_tokens, completion_tokens, latency_s FROM usage"
    rows = store.db.conn.execute(sql + (f" WHERE {where}" if where else ""), args).fetchall()
    latencies = sorted(r[4] for r in rows if r[0] == "ok" and r[4] is not None)
    ratings = store.db.conn.execute(
        "SELECT rating, COUNT(*), SUM(correction IS NOT NULL) FROM feedback GROUP BY rating").fetchall()
    return {
        "requests": len(rows),
        "by_status": dict(Counter(r[0] for r in rows)),
        "by_model": dict(Counter(r[1] for r in rows if r[1])),
        "prompt_tokens": sum(r[2] or 0 for r in rows),
        "completion_tokens": sum(r[3] or 0 for r in rows),
        "latency_p50_s": _percentile(latencies, 0.5),
        "latency_p95_s": _percentile(latencies, 0.95),
        "feedback": {
            "count": sum(n for _, n, _ in ratings),
            "by_rating": {str(r): n for r, n, _ in ratings if r is not None},
            "corrections": sum(c or 0 for _, _, c in ratings),
        },
    }


# -- feedback ---------------------------------------------------------------
def add_feedback(store: Store, response_id: str, *, rating: int | None = None, correction: str | None = None,
                 comment: str | None = None, key_id: int | None = None) -> int:
    """Record a rating (-1, 0, 1) and/or a corrected answer for a logged response."""
    if rating is None and not correction:
        raise StoreError("Feedback needs a rating (-1, 0 or 1) or a corrected answer.")
    if rating is not None and rating not in (-1, 0, 1):
        raise StoreError(f"Rating {rating!r} is out of range: use -1 (bad), 0 (neutral) or 1 (good).")
    with store._tx():
        table = store.db["feedback"].insert(
            {"response_id": response_id, "ts": time.time(), "rating": rating, "correction": correction,
             "comment": comment, "key_id": key_id})
    return int(table.last_pk)


def feedback_rows(store: Store, response_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("response_id = ?", [response_id]) if response_id else (None, None)
    return list(store.db["feedback"].rows_where(where, args, order_by="id"))


# -- API keys ---------------------------------------------------------------
def create_key(store: Store, name: str) -> str:
    """Make a new API key named `name`; only its sha256 is stored, so the returned key is shown once."""
    name = name.strip()
    if not name:
        raise StoreError("An API key needs a name (`ingrain keys create --name laptop`).")
    key = KEY_PREFIX + secrets.token_urlsafe(30)
    with store._tx():
        store.db["api_keys"].insert({"name": name, "prefix": key[:len(KEY_PREFIX) + 4], "hash": hash_key(key),
                                     "created": time.time(), "revoked": None})
    return key


def verify_key(store: Store, key: str | None) -> dict[str, Any] | None:
    """The key's row (id, name, prefix) if `key` is a live key, else None."""
    if not key:
        return None
    rows = list(store.db["api_keys"].rows_where("hash = ? AND revoked IS NULL", [hash_key(key)], limit=1))
    return {k: rows[0][k] for k in ("id", "name", "prefix")} if rows else None


def live_key_hashes(store: Store) -> dict[str, int]:
    """hash → key id for every key not revoked (what a server caches to check keys without a query)."""
    rows = store.db.conn.execute("SELECT hash, id FROM api_keys WHERE revoked IS NULL").fetchall()
    return {h: int(i) for h, i in rows}


def api_keys(store: Store) -> list[dict[str, Any]]:
    """Keys without their hashes."""
    return [{k: r[k] for k in ("id", "name", "prefix", "created", "revoked")}
            for r in store.db["api_keys"].rows_where(order_by="id")]


def revoke_key(store: Store, key_id: int) -> None:
    with store._tx():
        changed = store.db.conn.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                        (time.time(), int(key_id))).rowcount
    if not changed:
        raise StoreError(f"No live API key with id {key_id}; `ingrain keys list` shows them.")
