"""The usage log as mining reads it: requests with content, the rows left out (counted), feedback per response."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from memory.feedback import feedback_by_response
from memory.store import Store
from memory.usage import system_hash, usage_rows
from tools.data.dedup import example_key


@dataclass
class LoggedRequest:
    """One usable request of the log."""

    id: str
    ts: float
    model: str | None
    source: str
    """local | upstream."""
    system_prompt: str | None
    system_hash: str | None
    prefix: list[dict[str, Any]]
    """The turns before the last user message (a few-shot block when it repeats)."""
    last_user: str
    """The request itself: the last user message."""


@dataclass
class Feedback:
    """Every rating of the log folded per response: the latest counts, contradictions are counted."""

    latest: dict[str, int]
    """response id → its latest rating (-1, 0, 1)."""
    corrections: dict[str, str]
    """response id → its latest correction."""
    contradictions: int
    """Responses rated both +1 and -1."""


def read_requests(store: Store, *, since: float | None, now: float | None,
                  skipped: Counter[str]) -> tuple[list[LoggedRequest], int]:
    """Usable requests oldest first, and the number of rows read; every row left out is counted in `skipped`."""
    rows = usage_rows(store, limit=None, since=since)
    kept = []
    for row in reversed(rows):
        why = _unusable(row, now)
        if why:
            skipped[why] += 1
            continue
        messages = [m for m in row["messages"] if m.get("role") != "system"]
        last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        kept.append(LoggedRequest(
            id=row["id"], ts=float(row["ts"]), model=row.get("model"), source=row.get("source") or "local",
            system_prompt=row.get("system_prompt") or None,
            system_hash=row.get("system_hash") or system_hash(row.get("system_prompt")),
            prefix=messages[:last], last_user=str(messages[last].get("content") or "")))
    return kept, len(rows)


def _unusable(row: dict[str, Any], now: float | None) -> str | None:
    """Why a row cannot be mined, or None."""
    if now is not None and row["ts"] > now:
        return "after_now"
    if row.get("status") != "ok":
        return "not_ok"
    if row.get("source") == "shadow":
        return "shadow"  # a second answer to a request already logged: counting it would count twice
    messages = row.get("messages")
    if messages is None:
        return "no_content"
    if isinstance(messages, str) or not isinstance(messages, list):
        return "malformed"
    if not all(isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages):
        return "malformed"
    if not any(m.get("role") == "user" and (m.get("content") or "").strip() for m in messages):
        return "no_content"
    return None


def read_feedback(store: Store) -> Feedback:
    """Ratings and corrections per response, folded as the data builder folds them (the latest wins)."""
    folded = feedback_by_response(store)
    return Feedback(latest={r: f.rating for r, f in folded.items() if f.rating is not None},
                    corrections={r: f.correction for r, f in folded.items() if f.correction},
                    contradictions=sum({-1, 1} <= f.ratings for f in folded.values()))


def block_text(turns: list[dict[str, Any]]) -> str:
    """A few-shot block as one text, for hashing and near-duplicate shingles."""
    return "\n".join(f"{t.get('role')}: {t.get('content') or ''}" for t in turns)


def block_hash(turns: list[dict[str, Any]]) -> str:
    """Content hash of a few-shot block, as tools.data.dedup hashes an example."""
    return example_key({"messages": turns})
