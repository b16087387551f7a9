"""Usage: what the endpoint is asked (requests over time, latency, tokens, feedback), the mined patterns,
the nightlies and their reports; and the lessons earlier runs wrote."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from agent.console.app import Reader, render
from agent.console.views import plot
from memory import Store, StoreError, Workspace
from memory.patterns import patterns
from memory.usage import usage_rows, usage_summary

router = APIRouter()
WINDOW_DAYS = 14
"""The requests-over-time plot covers this many days back."""


@router.get("/usage")
def usage_page(request: Request, who: Reader) -> Response:
    since = time.time() - WINDOW_DAYS * 86400
    with Store.open() as store:
        recent = usage_rows(store, limit=25)
        window = usage_rows(store, limit=20000, since=since)
        summary = usage_summary(store)
        mined = patterns(store)
        nightlies = [r for r in store.runs(limit=200) if r.get("kind") == "nightly"]
    for row in recent:
        row["prompt"] = next((m.get("content") for m in reversed(row["messages"] or [])
                              if isinstance(m, dict) and m.get("role") == "user"), "")
    ws = Workspace.from_env()
    for row in nightlies:
        row["has_report"] = (ws.run_dir(row["id"]) / "report.html").exists()
    return render(request, "usage.html", summary=summary, recent=recent, patterns=mined, nightlies=nightlies,
                  chart=requests_plot(window), window_days=WINDOW_DAYS)


def requests_plot(rows: list[dict[str, Any]]) -> str:
    """Requests per hour (per day over longer spans) as bars, with p50 and p95 latency of served requests."""
    if not rows:
        return ""
    span = max(r["ts"] for r in rows) - min(r["ts"] for r in rows)
    bucket = 3600 if span <= 3 * 86400 else 86400
    counts: dict[float, int] = defaultdict(int)
    latencies: dict[float, list[float]] = defaultdict(list)
    for row in rows:
        start = row["ts"] // bucket * bucket
        counts[start] += 1
        if row["status"] == "ok" and row.get("latency_s") is not None:
            latencies[start].append(row["latency_s"])
    starts = sorted(counts)

    def draw(ax: Any) -> None:
        xs = [datetime.fromtimestamp(s) for s in starts]
        ax.bar(xs, [counts[s] for s in starts], width=bucket / 86400 * 0.8, color="tab:blue", label="requests")
        ax.set_ylabel("requests per " + ("hour" if bucket == 3600 else "day"))
        ax.grid(alpha=0.3, axis="y")
        timed = [s for s in starts if latencies[s]]
        if timed:
            right = ax.twinx()
            for q, style in ((0.5, "-"), (0.95, "--")):
                values = [sorted(latencies[s])[min(len(latencies[s]) - 1, round(q * (len(latencies[s]) - 1)))]
                          for s in timed]
                right.plot([datetime.fromtimestamp(s) for s in timed], values, style, color="tab:orange",
                           marker="o", markersize=3, label=f"latency p{round(q * 100)}")
            right.set_ylabel("seconds")
            right.legend(fontsize=7, loc="upper right")
        ax.figure.autofmt_xdate()

    return plot(draw, alt="requests over time")


@router.get("/nightlies/{run_id}/report")
def nightly_report(request: Request, who: Reader, run_id: str) -> Response:
    with Store.open() as store:
        run = store.run(run_id)
    path = Workspace.from_env().run_dir(run["id"]) / "report.html"
    if run.get("kind") != "nightly" or not path.exists():
        raise StoreError(f"No nightly report for run {run['id']}.")
    return FileResponse(path, media_type="text/html")


@router.get("/lessons")
def lessons_page(request: Request, who: Reader) -> Response:
    with Store.open() as store:
        rows = store.lessons(limit=500)
    return render(request, "lessons.html", rows=rows)
