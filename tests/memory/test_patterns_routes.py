"""The patterns table keeps state across minings; the route table switches back to upstream by itself."""

from __future__ import annotations

import pytest

from memory import patterns, routes
from memory.errors import StoreError
from memory.store import Store


def _mined(count: int, **extra) -> dict:
    return {"id": "system_prompt:abc", "kind": "system_prompt", "key": "abc", "count": count, "score": count,
            "threshold": 20, "goal": "bake it", "first_seen": 100.0 + count, "last_seen": 200.0, **extra}


def test_handled_pattern_stays_handled_until_it_grows(workspace) -> None:
    with Store.open(workspace) as store:
        [row] = patterns.save_patterns(store, [_mined(30, spec={"objective": "style"})])
        assert row["state"] == "new" and patterns.actionable(row) and row["spec"] == {"objective": "style"}
        patterns.mark_pattern(store, row["id"], "handled", run_id=7)
        [again] = patterns.save_patterns(store, [_mined(40)])
        assert (again["state"], again["handled_count"], again["run_id"]) == ("handled", 30, 7)
        assert again["first_seen"] == 130.0 and not patterns.actionable(again)
        [grown] = patterns.save_patterns(store, [_mined(45)])
        assert grown["state"] == "new"
        patterns.mark_pattern(store, row["id"], "ignored")
        assert patterns.save_patterns(store, [_mined(500)])[0]["state"] == "ignored"
        assert [p["id"] for p in patterns.patterns(store, state="ignored")] == ["system_prompt:abc"]
        with pytest.raises(StoreError, match="Unknown pattern state"):
            patterns.mark_pattern(store, row["id"], "done")
        with pytest.raises(StoreError, match="Unknown pattern kind"):
            patterns.save_patterns(store, [{**_mined(1), "kind": "weird"}])


def test_route_goes_back_upstream_when_shadow_agreement_falls(workspace) -> None:
    with Store.open(workspace) as store:
        below = routes.set_route(store, "p1", match={"system_hash": "h"}, local_model="v1", agreement=0.5,
                                 threshold=0.8)
        assert below["state"] == "upstream"
        route = routes.set_route(store, "p1", match={"system_hash": "h"}, local_model="v1", agreement=0.9,
                                 threshold=0.8)
        assert route["state"] == "local" and route["match"] == {"system_hash": "h"}
        for agreed in [True] * 7 + [False] * 2:
            route = routes.record_shadow(store, "p1", agreed)
        assert route["state"] == "local"  # nine samples: too few to overrule the hold-out
        route = routes.record_shadow(store, "p1", False)
        assert route["state"] == "upstream" and route["agreement"] == 0.7 and route["samples"] == 10
        assert [r["pattern_id"] for r in routes.routes(store, state="upstream")] == ["p1"]
