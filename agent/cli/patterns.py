"""`ingrain patterns`: mine the usage log, show what recurs (and the proxy's routes), set a pattern's state."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from agent.cli.common import JsonOpt, app, emit_json
from agent.errors import AgentError


def parse_since(value: str | None) -> float | None:
    """A YYYY-MM-DD date (local midnight) or an ISO datetime as a timestamp; a clear error otherwise."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise AgentError(f"--since {value!r} is not a date: give YYYY-MM-DD (e.g. 2025-06-16) or an ISO datetime "
                         "(e.g. 2025-06-16T08:00 or 2025-06-16T08:00:00+02:00).") from None


def patterns(
    since: Annotated[str | None, typer.Option("--since", help="Only requests since this date (YYYY-MM-DD, local "
                                              "midnight) or ISO datetime. Default: the whole log.")] = None,
    as_json: JsonOpt = False,
    ignore: Annotated[str | None, typer.Option("--ignore", help="Set this pattern id to ignored (nightlies skip "
                                               "it) instead of mining.")] = None,
    reset: Annotated[str | None, typer.Option("--reset", help="Set this pattern id back to new instead of "
                                              "mining.")] = None,
) -> None:
    """Mine the usage log for recurring prompts, request clusters, bad answers, upstream traffic and drift."""
    from memory import Store
    from memory.patterns import mark_pattern
    from memory.routes import routes

    since_ts = parse_since(since)
    if ignore and reset:
        raise AgentError("--ignore and --reset each set one pattern's state: give one of them per call.")
    with Store.open() as store:
        if ignore or reset:
            row = mark_pattern(store, ignore or reset or "", "ignored" if ignore else "new")
            if as_json:
                emit_json({"pattern": row})
            else:
                Console(stderr=True).print(f"Pattern {escape(row['id'])} ({escape(row['label'] or '')}) is now "
                                           f"{row['state']}.", highlight=False)
            return
        from tools.patterns import mine_patterns

        result = mine_patterns(store, since=since_ts)
        route_rows = routes(store)
    summary = {k: v for k, v in result.to_dict().items() if k not in ("patterns", "skipped")}
    if as_json:
        emit_json({"patterns": result.patterns, "routes": route_rows, "skipped": result.skipped,
                   "summary": summary})
        return
    _print(result.patterns, route_rows, result.skipped, summary)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def _print(rows: list[dict[str, Any]], route_rows: list[dict[str, Any]], skipped: dict[str, int],
           summary: dict[str, Any]) -> None:
    console, notes = Console(highlight=False), Console(stderr=True, highlight=False)
    if rows:
        # The goals are sentences: they go under the table, so the table stays readable on 80 columns.
        table = Table(Column("id", overflow="fold"), "kind", "label", "count", "last seen", "score/thr", "state",
                      title="patterns")
        for row in rows:
            table.add_row(row["id"], row["kind"], escape(row["label"] or ""), str(row["count"]),
                          _when(row["last_seen"]), f"{row['score']:g}/{row['threshold']:g}", row["state"])
        console.print(table)
        for row in rows:
            if row.get("goal"):
                console.print(f"[bold]{escape(row['id'])}[/] (first seen {_when(row['first_seen'])}): "
                              f"{escape(row['goal'])}")
    if route_rows:
        routes = Table("pattern", "state", "agreement", "samples", "local model", title="proxy routes")
        for route in route_rows:
            agreement = route.get("agreement")
            routes.add_row(route["pattern_id"], route["state"], f"{agreement:.2f}" if agreement is not None else "-",
                           str(route["samples"]), escape(route.get("local_model") or ""))
        console.print(routes)
    else:
        console.print("No proxy routes yet: a nightly sets one when a distilled version matches the upstream.")
    left_out = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in skipped.items() if n)
    notes.print(summary["message"] + (f" Left out: {left_out}." if left_out else ""))
    for note in summary.get("notes") or []:
        notes.print(f"note: {escape(note)}")
    notes.print(f"Embedder {summary['embedder']}, {summary['timings'].get('total', 0):.1f} s. "
                "`ingrain patterns --ignore ID` stops nightlies acting on a pattern; `--reset ID` undoes it.")


app.command("patterns")(patterns)
