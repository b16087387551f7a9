"""Feedback on logged responses: a rating (-1, 0, 1) and/or a corrected answer, keyed by response id."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from memory.errors import StoreError
from memory.store import Store

_BATCH = 500
"""Ids per SQL `IN (...)`, well under SQLite's variable limit."""


def add_feedback(store: Store, response_id: str, *, rating: int | None = None, correction: str | None = None,
                 comment: str | None = None, key_id: int | None = None) -> int:
    """Record a rating (-1, 0, 1) and/or a corrected answer for a logged response."""
    if rating is None and not correction:
        raise StoreError("Feedback needs a rating (-1, 0 or 1) or a corrected answer.")
    if rating is not None and rating not in (-1, 0, 1):
        raise StoreError(f"Rating {rating!r} is out of range: use -1 (bad), 0 (neutral) or 1 (good).")
    with store.transaction():
        table = store.db["feedback"].insert(
            {"response_id": response_id, "ts": time.time(), "rating": rating, "correction": correction,
             "comment": comment, "key_id": key_id})
    return int(table.last_pk)


def feedback_rows(store: Store, response_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("response_id = ?", [response_id]) if response_id else (None, None)
    return list(store.db["feedback"].rows_where(where, args, order_by="id"))


@dataclass
class ResponseFeedback:
    """Every rating and correction of one response, folded: the latest of each counts."""

    rating: int | None = None
    """The latest rating given (-1, 0, 1), or None when it only got corrections."""
    correction: str | None = None
    """The latest correction given."""
    ratings: set[int] = field(default_factory=set)
    """Every rating it got; {-1, 1} <= ratings means callers contradicted each other."""


def feedback_by_response(store: Store, response_ids: Iterable[str] | None = None) -> dict[str, ResponseFeedback]:
    """Feedback per response id (all responses, or only `response_ids`), the latest rating and correction
    winning: the one rule the usage-log miner and the data builder both read feedback by."""
    ids = None if response_ids is None else list(dict.fromkeys(response_ids))
    rows: list[dict[str, Any]] = []
    if ids is None:
        rows = feedback_rows(store)
    else:
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start:start + _BATCH]
            rows += store.db["feedback"].rows_where(f"response_id IN ({','.join('?' * len(chunk))})", chunk,
                                                    order_by="id")
        rows.sort(key=lambda r: r["id"])
    folded: dict[str, ResponseFeedback] = {}
    for row in rows:
        entry = folded.setdefault(row["response_id"], ResponseFeedback())
        if row["rating"] is not None:
            entry.rating = row["rating"]
            entry.ratings.add(row["rating"])
        if row["correction"]:
            entry.correction = row["correction"]
    return folded
