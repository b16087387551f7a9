"""What the run pages show, read from the store and the run's checkpoint: run rows, the graph, the trace tree."""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from memory import Store, Workspace

FINAL = ("finished", "rejected")
_STATE_CACHE: dict[int, tuple[tuple[int, ...], RunState]] = {}
_SECTIONS_CACHE: dict[tuple[int, str | None], dict[str, str]] = {}
_PLOTS = threading.Lock()
"""matplotlib's pyplot is not thread-safe, and pages render in a thread pool."""


@dataclass
class RunState:
    """The graph's state for a run, as its checkpoint holds it."""

    values: dict[str, Any] = field(default_factory=dict)
    interrupt: dict[str, Any] | None = None
    """The open gate's payload (question, plan or sweep or verdict), when the run waits at one."""
    checkpoint: str | None = None


@functools.cache
def graph_nodes() -> list[str]:
    """The graph's nodes in the order graph.py wires them (the diagram in DESIGN.md)."""
    from agent.graph import build_graph

    return [n for n in build_graph().get_graph().nodes if not n.startswith("__")]


def run_state(run_id: int) -> RunState:
    """Read the run's checkpoint (cached until its files change); empty before the run's first step."""
    path = Workspace.from_env().run_dir(run_id) / "checkpoints.db"
    files = [path, path.with_name(path.name + "-wal")]
    stamp = tuple(v for f in files if f.exists() for v in (f.stat().st_mtime_ns, f.stat().st_size))
    if not stamp:
        return RunState()
    cached = _STATE_CACHE.get(run_id)
    if cached and cached[0] == stamp:
        return cached[1]
    from agent.graph import build_graph
    from memory.checkpoints import run_checkpointer

    with run_checkpointer(path) as saver:
        snapshot = build_graph(saver).get_state({"configurable": {"thread_id": str(run_id)}})
    state = RunState(dict(snapshot.values or {}), snapshot.interrupts[0].value if snapshot.interrupts else None,
                     (snapshot.config or {}).get("configurable", {}).get("checkpoint_id"))
    _STATE_CACHE[run_id] = (stamp, state)
    return state


def report_sections(run_id: int, state: RunState, events: list[dict[str, Any]]) -> dict[str, str]:
    """The HTML report's parts for this run (plots drawn once per checkpoint)."""
    from evals.report import report_sections as sections

    key = (run_id, state.checkpoint)
    if key not in _SECTIONS_CACHE:
        with _PLOTS:
            _SECTIONS_CACHE[key] = sections(state.values, events)
        while len(_SECTIONS_CACHE) > 32:
            _SECTIONS_CACHE.pop(next(iter(_SECTIONS_CACHE)))
    return _SECTIONS_CACHE[key]


def plot(draw: Any, alt: str) -> str:
    from evals.report import plot_png

    with _PLOTS:
        return plot_png(draw, alt=alt)


def current_node(run: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    """The node a running run is in (the last one started and not ended), or the gate a paused one waits at."""
    if run["status"] == "paused" and run.get("gate"):
        return f"{run['gate']}_gate"
    if run["status"] not in ("running", "failed"):
        return None
    open_node = None
    for event in events:
        if event["kind"] == "node_start":
            open_node = event["name"]
        elif event["kind"] == "node_end" and event["name"] == open_node:
            open_node = None
    return open_node


def live_wall(run: dict[str, Any]) -> float:
    """Wall seconds so far: the stored total, plus the current stretch while a process drives the run."""
    extra = time.time() - run["updated"] if run["status"] == "running" else 0.0
    return (run["wall_seconds"] or 0.0) + max(0.0, extra)


def runs_rows(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    rows = []
    for run in store.runs(limit=limit):
        node = None
        if run["status"] in ("running", "paused", "failed"):
            node = current_node(run, store.events(run["id"], kinds=["node_start", "node_end"]))
        rows.append({**run, "node": node, "wall": live_wall(run)})
    return rows


def graph_view(run: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each node of the graph with how often it ran and its mark: done, current, waiting, failed or pending."""
    runs_of: dict[str, int] = {}
    for event in events:
        if event["kind"] == "node_end":
            runs_of[event["name"]] = runs_of.get(event["name"], 0) + 1
        elif event["kind"] in ("answer", "decision") and (event.get("node") or "").endswith("_gate"):
            # A gate is no traced node: it is passed when a person answered it or a policy decided it.
            runs_of[event["node"]] = runs_of.get(event["node"], 0) + 1
    current = current_node(run, events)
    nodes = []
    for name in graph_nodes():
        mark = "done" if runs_of.get(name) else "pending"
        if name == current:
            mark = {"paused": "waiting", "failed": "failed"}.get(run["status"], "current")
        nodes.append({"name": name, "mark": mark, "times": runs_of.get(name, 0)})
    return nodes


@dataclass
class TraceItem:
    """One line of the trace tree; a node's line holds its tool calls, decisions, metrics and errors."""

    id: int
    kind: str
    title: str
    seconds: float | None = None
    detail: str = ""
    error: bool = False
    children: list[TraceItem] = field(default_factory=list)


def trace_tree(events: list[dict[str, Any]]) -> list[TraceItem]:
    top: list[TraceItem] = []
    node: TraceItem | None = None
    for event in events:
        kind, name, data = event["kind"], event["name"] or "", event.get("data")
        item = TraceItem(event["id"], kind, _title(kind, name, data), event.get("duration_s"), _detail(data),
                         error=kind == "error" or (isinstance(data, dict) and bool(data.get("error"))))
        if kind == "node_start":
            node = item
            top.append(item)
        elif kind == "node_end":
            if node is not None and node.title == name:
                node.seconds = event.get("duration_s")
            node = None
        elif kind in ("gate", "answer") or node is None:
            top.append(item)
        else:
            node.children.append(item)
            node.error = node.error or item.error
    return top


def _title(kind: str, name: str, data: Any) -> str:
    info = data if isinstance(data, dict) else {}
    if kind == "node_start":
        return name
    if kind == "tool_call":
        return f"tool {name}" + (f": {info['error']}" if info.get("error") else "")
    if kind == "decision":
        return f"decision {name}: {info.get('reason', '')}"
    if kind == "gate":
        return f"gate {name}: {info.get('question', '')}"
    if kind == "answer":
        extra = info.get("choice") or info.get("reason") or ""
        return f"answer at {name}: {info.get('action', '')} by {info.get('by', '?')}" + (f" ({extra})" if extra else "")
    if kind == "error":
        return f"error {name}: {info.get('message', '')}"
    if kind == "metric":
        return f"metric {name} = {_short(info.get('value'))}"
    if kind == "lesson":
        return f"lesson {name}: {info.get('text', '')}"
    return f"{kind} {name}"


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _detail(data: Any) -> str:
    if data in (None, {}, []):
        return ""
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)[:20000]
