"""The proxy's route table: which pattern's requests a local version answers instead of the upstream.

A route is set `local` when a distilled version matched the upstream on its pattern's hold-out; the proxy
keeps sending a shadow sample upstream and records whether the two agreed. When the agreement over the
recent window falls below the route's threshold, the route goes back to `upstream` by itself.
"""

from __future__ import annotations

import json
import time
from typing import Any

from memory.errors import StoreError
from memory.store import Store

ROUTE_STATES = ("local", "upstream")
SHADOW_WINDOW = 50
"""Shadow comparisons kept per route; the agreement is their mean."""
MIN_SHADOW = 10
"""Comparisons needed before shadow traffic alone can switch a route back to the upstream."""


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("match", "data"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def set_route(store: Store, pattern_id: str, *, match: dict[str, Any], local_model: str, agreement: float,
              threshold: float, upstream_model: str | None = None, samples: int = 0) -> dict[str, Any]:
    """Record a measured agreement for a pattern's local version; the route is local if it clears the bar."""
    state = "local" if agreement >= threshold else "upstream"
    row = {"pattern_id": pattern_id, "match": json.dumps(match), "upstream_model": upstream_model,
           "local_model": local_model, "state": state, "agreement": round(agreement, 4), "samples": samples,
           "threshold": threshold, "data": json.dumps({"recent": [], "holdout_agreement": agreement}),
           "updated": time.time()}
    with store.transaction():
        store.db["routes"].insert(row, pk="pattern_id", replace=True)
    return route(store, pattern_id)


def route(store: Store, pattern_id: str) -> dict[str, Any]:
    rows = list(store.db["routes"].rows_where("pattern_id = ?", [pattern_id], limit=1))
    if not rows:
        raise StoreError(f"No route for pattern {pattern_id!r}: `ingrain patterns` lists the routes there are; "
                         "a nightly sets one when it promotes a version distilled for that pattern.")
    return _decode(rows[0])


def routes(store: Store, *, state: str | None = None) -> list[dict[str, Any]]:
    where, args = ("state = ?", [state]) if state else (None, None)
    return [_decode(r) for r in store.db["routes"].rows_where(where, args, order_by="pattern_id")]


def record_shadow(store: Store, pattern_id: str, agreed: bool) -> dict[str, Any]:
    """Add one shadow comparison; switch the route to `upstream` when agreement falls below its threshold."""
    with store.transaction():
        current = route(store, pattern_id)
        data = current.get("data") or {}
        recent = [*data.get("recent", []), int(bool(agreed))][-SHADOW_WINDOW:]
        agreement = sum(recent) / len(recent)
        state = current["state"]
        if state == "local" and len(recent) >= MIN_SHADOW and agreement < current["threshold"]:
            state = "upstream"
        store.db["routes"].update(pattern_id, {
            "data": json.dumps({**data, "recent": recent}), "agreement": round(agreement, 4),
            "samples": current["samples"] + 1, "state": state, "updated": time.time()})
    return route(store, pattern_id)
