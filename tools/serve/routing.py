"""`--route auto`: which upstream-bound requests a local version answers, when to check it, and agreement.

A request matches a route by its system prompt's hash, the usage log's `system_hash` (memory.usage). The
route table lives in the store (memory.routes; the nightly sets routes after it promotes a distilled
version) and is re-read at most once a second, so a new or flipped route takes effect quickly.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any

from memory import routes
from memory.store import Store
from memory.usage import system_hash
from tools.serve.usage import split_chat
from tools.text import token_f1

log = logging.getLogger("ingrain.serve")

ROUTE_CACHE_SECONDS = 1.0
AGREEMENT_F1 = 0.8
"""Token F1 two answers need (besides the same first line) to count as agreeing."""


def _first_line_words(text: str) -> list[str]:
    for line in text.splitlines():
        if words := re.findall(r"\w+", line.lower()):
            return words
    return []


def answers_agree(local: str, upstream: str) -> bool:
    """Whether a local answer stands in for the upstream's: the same first non-empty line (words only, case
    ignored) and a token F1 of at least 0.8 over the whole answers.

    The first line is where structured replies put their decision (a label, a category, a verdict), so one
    changed word there is a disagreement even when the rest is identical; F1 alone would call it 0.96.
    """
    return _first_line_words(local) == _first_line_words(upstream) and token_f1(local, upstream) >= AGREEMENT_F1


class RouteTable:
    """The store's routes keyed by system-prompt hash, re-read at most once a second; shadow counters."""

    def __init__(self, store: Store, shadow_rate: float) -> None:
        self.store = store
        self.shadow_every = round(1 / shadow_rate) if shadow_rate > 0 else 0
        self._by_hash: dict[str, dict[str, Any]] = {}
        self._states: dict[str, str] = {}
        self._read = -1e9
        self._routed: Counter[str] = Counter()

    def match(self, chat: list[dict[str, str]], model: str | None) -> dict[str, Any] | None:
        """The local route this request falls under, or None to send it upstream."""
        if time.monotonic() - self._read >= ROUTE_CACHE_SECONDS:
            self.refresh()
        digest = system_hash(split_chat(chat)[0])
        found = self._by_hash.get(digest or "")
        if found is None or found["state"] != "local":
            return None
        if found.get("upstream_model") not in (None, model):
            return None
        return found

    def refresh(self) -> None:
        by_hash = {}
        for row in routes.routes(self.store):
            match = row.get("match") or {}
            # A near-duplicate prompt (a changed date or name) is the same pattern: every version routes.
            for digest in [match.get("system_hash"), *(match.get("system_hashes") or [])]:
                if digest:
                    by_hash[digest] = row
            self._note_state(row)
        self._by_hash, self._read = by_hash, time.monotonic()

    def shadow_due(self, pattern_id: str) -> bool:
        """True for the 1st, (N+1)th, (2N+1)th ... request routed locally under this pattern."""
        self._routed[pattern_id] += 1
        return self.shadow_every > 0 and (self._routed[pattern_id] - 1) % self.shadow_every == 0

    def record(self, pattern_id: str, agreed: bool) -> dict[str, Any]:
        """Store one shadow comparison; a route that falls below its threshold goes upstream at once."""
        row = routes.record_shadow(self.store, pattern_id, agreed)
        for digest, cached in self._by_hash.items():
            if cached["pattern_id"] == pattern_id:
                self._by_hash[digest] = row
        self._note_state(row)
        return row

    def _note_state(self, row: dict[str, Any]) -> None:
        before = self._states.get(row["pattern_id"])
        if before != row["state"]:
            self._states[row["pattern_id"]] = row["state"]
            if before is not None or row["state"] == "local":
                log.info("route %s: %s -> %s (local model %s, agreement %s over %d samples, threshold %s)",
                         row["pattern_id"], before or "new", row["state"], row.get("local_model"),
                         row.get("agreement"), row.get("samples") or 0, row.get("threshold"))
