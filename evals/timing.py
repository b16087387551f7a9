"""Estimate against actual, per step of the run: what the plan said each step would take and what it took."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NODE_STEP = {"plan": "plan", "gather": "prepare", "build_data": "prepare", "sweep": "sweep", "train": "train",
             "evaluate": "evaluate", "deploy": "deploy"}
"""Graph node → the plan's step it is timed against."""


def actual_seconds(events: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent per plan step, from the trace's node_end events (a re-run node counts each time)."""
    spent: dict[str, float] = {}
    for event in events:
        step = NODE_STEP.get(event.get("node") or "")
        if event.get("kind") == "node_end" and step and event.get("duration_s") is not None:
            spent[step] = spent.get(step, 0.0) + float(event["duration_s"])
    return spent


def estimate_vs_actual(minutes: dict[str, float], events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per planned step: estimated and actual minutes and their ratio (actual / estimate)."""
    spent = actual_seconds(events)
    rows = []
    for step, planned in minutes.items():
        if step == "total" or step not in spent:
            continue
        actual = spent[step] / 60
        rows.append({"step": step, "estimate_min": round(planned, 2), "actual_min": round(actual, 2),
                     "ratio": round(actual / planned, 2) if planned > 0.01 else None})
    return rows
