"""Mined usage patterns: what keeps recurring in the endpoint's traffic, with a state people and nightlies set.

A pattern's `id` is stable from one mining to the next (its kind plus a key such as the system prompt's
hash), so mining again updates counts without losing the state: a handled pattern stays handled until it
grows past `GROWTH` times the count it had when it was handled, then it is new again.
"""

from __future__ import annotations

import json
import time
from typing import Any

from memory.errors import StoreError
from memory.store import Store

PATTERN_KINDS = ("system_prompt", "cluster", "negative_feedback", "upstream", "drift")
PATTERN_STATES = ("new", "handled", "ignored")
GROWTH = 1.5
"""A handled pattern is acted on again once its count reaches this multiple of its count when handled."""
_JSON = ("spec", "examples", "data")
_KEPT = ("state", "handled_count", "run_id", "first_seen")


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON:
        if out.get(key) is not None and not isinstance(out[key], str):
            out[key] = json.dumps(out[key], ensure_ascii=False, default=str)
    return out


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON:
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def _merged(old: dict[str, Any] | None, fresh: dict[str, Any], now: float) -> dict[str, Any]:
    """The row saving `fresh` gives: a known pattern keeps its state and history; a handled one that grew is new."""
    row = {**fresh, "mined": now, "updated": now}
    row.setdefault("state", "new")
    if old is not None:
        row.update({k: old[k] for k in _KEPT if old[k] is not None})
        if old["first_seen"] is not None and fresh.get("first_seen") is not None:
            row["first_seen"] = min(old["first_seen"], fresh["first_seen"])
        if row["state"] == "handled" and row["count"] >= GROWTH * (old["handled_count"] or 0):
            row["state"] = "new"  # it grew: worth another look
    return row


def _stored(store: Store, pattern_id: str) -> dict[str, Any] | None:
    return next(iter(store.db["patterns"].rows_where("id = ?", [pattern_id], limit=1)), None)


def save_patterns(store: Store, mined: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upsert freshly mined patterns in one transaction, keeping each known pattern's state and history.

    Each mined dict has at least id, kind, key and count; the other columns of `patterns` are optional.
    Returns the stored rows, in the order given.
    """
    now = time.time()
    with store.transaction():
        for fresh in mined:
            if fresh.get("kind") not in PATTERN_KINDS:
                raise StoreError(f"Unknown pattern kind {fresh.get('kind')!r}; one of {', '.join(PATTERN_KINDS)}.")
            row = _merged(_stored(store, fresh["id"]), fresh, now)
            store.db["patterns"].insert(_encode(row), pk="id", replace=True, alter=False)
    return [pattern(store, p["id"]) for p in mined]


def preview_patterns(store: Store, mined: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What save_patterns would store for `mined` (state and history merged the same way), writing nothing."""
    now = time.time()
    return [_merged(_stored(store, fresh["id"]), fresh, now) for fresh in mined]


def patterns(store: Store, *, state: str | None = None, kind: str | None = None,
             since: float | None = None) -> list[dict[str, Any]]:
    """Stored patterns, highest score first; optionally only one state, one kind, or seen since `since`."""
    clauses, args = [], []
    for column, op, value in (("state", "=", state), ("kind", "=", kind), ("last_seen", ">=", since)):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            args.append(value)
    rows = store.db["patterns"].rows_where(" AND ".join(clauses) or None, args,
                                           order_by="score desc, count desc")
    return [_decode(r) for r in rows]


def pattern(store: Store, pattern_id: str) -> dict[str, Any]:
    rows = list(store.db["patterns"].rows_where("id = ?", [pattern_id], limit=1))
    if not rows:
        raise StoreError(f"No pattern {pattern_id!r}; `ingrain patterns` lists the patterns there are.")
    return _decode(rows[0])


def mark_pattern(store: Store, pattern_id: str, state: str, *, run_id: int | None = None) -> dict[str, Any]:
    """Set a pattern's state; `handled` remembers its current count so only growth brings it back."""
    if state not in PATTERN_STATES:
        raise StoreError(f"Unknown pattern state {state!r}; one of {', '.join(PATTERN_STATES)}.")
    current = pattern(store, pattern_id)
    fields: dict[str, Any] = {"state": state, "updated": time.time()}
    if state == "handled":
        fields["handled_count"] = current["count"]
    if run_id is not None:
        fields["run_id"] = run_id
    with store.transaction():
        store.db["patterns"].update(pattern_id, fields)
    return pattern(store, pattern_id)


def actionable(row: dict[str, Any]) -> bool:
    """A new pattern over its threshold that names a goal: what a nightly acts on."""
    return (row["state"] == "new" and bool(row.get("goal")) and row.get("score") is not None
            and row.get("threshold") is not None and row["score"] >= row["threshold"])
