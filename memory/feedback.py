"""Feedback on logged responses: a rating (-1, 0, 1) and/or a corrected answer, keyed by response id."""

from __future__ import annotations

import time
from typing import Any

from memory.errors import StoreError
from memory.store import Store


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
