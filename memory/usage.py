"""The endpoint's usage log: one row per request (prompt, reply, source, version, latency, tokens), and totals."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from memory.store import Store

USAGE_COLUMNS = (
    "id", "ts", "model", "key_id", "status", "finish_reason", "stream", "system_prompt", "system_hash",
    "messages", "response", "prompt_tokens", "completion_tokens", "latency_s", "ttft_s", "params", "error",
    "source", "partial", "route",
)
_USAGE_JSON = ("messages", "params")
_BATCH = 500
"""Ids per SQL `IN (...)`, well under SQLite's variable limit."""


def system_hash(system: str | None) -> str | None:
    """The `system_hash` a usage row keeps of its system prompt (sha256, also when the content is not kept):
    what mining groups repeated prompts by and what a proxy route matches."""
    return hashlib.sha256(system.encode("utf-8")).hexdigest() if system else None


def log_requests(store: Store, rows: Iterable[dict[str, Any]]) -> int:
    """Insert usage rows in one transaction; a row whose id is already logged is replaced."""
    batch = []
    for row in rows:
        clean = {k: row.get(k) for k in USAGE_COLUMNS}
        for key in _USAGE_JSON:
            if clean[key] is not None and not isinstance(clean[key], str):
                clean[key] = json.dumps(clean[key], ensure_ascii=False, default=str)
        clean["stream"] = int(bool(clean["stream"]))
        clean["partial"] = int(bool(clean["partial"]))
        clean["source"] = clean["source"] or "local"
        clean["ts"] = clean["ts"] or time.time()
        batch.append(clean)
    if batch:
        with store.transaction():
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


def usage_rows_by_id(store: Store, response_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The logged rows of these response ids (decoded), by id; ids never logged are absent."""
    ids = list(dict.fromkeys(response_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start:start + _BATCH]
        for row in store.db["usage"].rows_where(f"id IN ({','.join('?' * len(chunk))})", chunk):
            found[row["id"]] = _decode_usage(row)
    return found


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
