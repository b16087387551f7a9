"""The agent trace: node starts and ends, tool calls, decisions, gates and errors, as store events."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from langgraph.errors import GraphInterrupt
from langgraph.runtime import Runtime
from rich.console import Console

from agent.context import Context

T = TypeVar("T")


def summarize(value: Any, limit: int = 300) -> Any:
    """A JSON-safe, short form of a value for the trace."""
    if isinstance(value, dict):
        return {str(k): summarize(v, limit) for k, v in list(value.items())[:20]}
    if isinstance(value, list | tuple):
        items = [summarize(v, limit) for v in value[:10]]
        return [*items, f"... {len(value) - 10} more"] if len(value) > 10 else items
    if isinstance(value, str | int | float | bool) or value is None:
        return value[:limit] + "…" if isinstance(value, str) and len(value) > limit else value
    if hasattr(value, "to_dict"):
        return summarize(value.to_dict(), limit)
    if isinstance(value, functools.partial):  # a tool handed a prepared call, e.g. the base model's replies
        shown = [*map(str, value.args), *(f"{key}={arg}" for key, arg in value.keywords.items())]
        return summarize(f"{value.func.__name__}({', '.join(shown)})", limit)
    return summarize(str(value), limit)


_PROGRESS = Console(stderr=True, highlight=False)
_MARKS = {"node_start": "[bold cyan]▶[/]", "node_end": "[green]✓[/]", "tool_call": "  [dim]·[/]",
          "decision": "  [yellow]→[/]", "error": "[bold red]✗[/]", "lesson": "  [magenta]✎[/]"}


def show_progress(node: str, kind: str, name: str | None, data: Any, duration_s: float | None) -> None:
    """One line per event on stderr, so stdout stays clean for --json."""
    if kind not in _MARKS:
        return
    took = f" [dim]({duration_s:.1f}s)[/]" if duration_s is not None else ""
    detail = ""
    if kind == "decision" and isinstance(data, dict):
        detail = f": {data.get('reason', '')}"
    elif kind in ("error", "lesson") and isinstance(data, dict):
        detail = f": {data.get('message') or data.get('text', '')}"
    label = node if kind.startswith("node") else (name or "")
    _PROGRESS.print(f"{time.strftime('%H:%M:%S')} {_MARKS[kind]} {label}{took}{detail}")


class Tracer:
    """Records one run's events; nodes get one from `tracer(runtime, node)`."""

    def __init__(self, ctx: Context, node: str) -> None:
        self.ctx, self.node = ctx, node

    def event(self, kind: str, name: str | None = None, data: Any = None, duration_s: float | None = None) -> None:
        if self.ctx.progress:
            show_progress(self.node, kind, name, data, duration_s)
        with self.ctx.store() as store:
            store.record_event(self.ctx.run_id, kind, node=self.node, name=name, data=summarize(data),
                               duration_s=duration_s)

    def tool(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a tool function and record its name, arguments, result summary and duration."""
        started = time.time()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.event("tool_call", name, {"args": kwargs or args, "error": str(exc)}, time.time() - started)
            raise
        self.event("tool_call", name, {"args": kwargs or args, "result": result}, time.time() - started)
        return result

    def decision(self, what: str, reason: str, **data: Any) -> None:
        self.event("decision", what, {"reason": reason, **data})

    def metric(self, name: str, value: Any) -> None:
        self.event("metric", name, {"value": value})


def traced(node: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Wrap a node so that its start, end (with duration) and any error become trace events."""
    name = node.__name__

    @functools.wraps(node)
    def wrapper(state: Any, runtime: Runtime[Context]) -> dict[str, Any]:
        trace = Tracer(runtime.context, name)
        trace.event("node_start", name)
        started = time.time()
        try:
            update = node(state, runtime)
        except GraphInterrupt:
            raise
        except Exception as exc:
            trace.event("error", type(exc).__name__, {"message": str(exc)}, time.time() - started)
            raise
        trace.event("node_end", name, {"keys": sorted(update)}, time.time() - started)
        return {**update, "completed": [name]}

    return wrapper
