"""How runs, traces, models and gates look on a terminal (rich)."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.table import Table
from rich.tree import Tree


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def runs_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="runs", show_lines=False)
    for column in ("id", "status", "gate", "policy", "model", "verdict", "wall", "created", "goal"):
        table.add_column(column, overflow="fold")
    colors = {"finished": "green", "paused": "yellow", "failed": "red", "running": "cyan"}
    for r in rows:
        status = f"[{colors.get(r['status'], 'white')}]{r['status']}[/]"
        table.add_row(str(r["id"]), status, r["gate"] or "", r["policy"], r["model"] or "", r["verdict"] or "",
                      _duration(r["wall_seconds"]), _when(r["created"]), _goal_cell(r))
    return table


def _goal_cell(row: dict[str, Any]) -> str:
    goal = escape(row["goal"][:60])
    if row.get("kind") == "nightly":
        return f"[bold]nightly[/] {goal}"
    return f"{goal} [dim](nightly {row['parent_id']})[/]" if row.get("parent_id") else goal


def models_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="model versions")
    for column in ("name", "status", "kind", "base", "verdict", "run", "created"):
        table.add_column(column)
    for r in rows:
        status = "[bold green]production[/]" if r["status"] == "production" else r["status"]
        table.add_row(r["name"], status, r["kind"], r["base"], r["verdict"] or "", str(r["run_id"] or ""),
                      _when(r["created"]))
    return table


def trace_tree(run: dict[str, Any], events: list[dict[str, Any]]) -> Tree:
    """Nodes as branches; tool calls, decisions, gates and errors under the node they happened in."""
    tree = Tree(f"[bold]run {run['id']}[/] · {run['status']} · {run['goal'][:70]}")
    branch = tree
    for e in events:
        data = e.get("data") or {}
        if e["kind"] == "node_start":
            branch = tree.add(f"[bold cyan]{e['name']}[/]")
        elif e["kind"] == "node_end":
            branch.label = f"{branch.label} [dim]({_duration(e['duration_s'])})[/]"
        elif e["kind"] == "tool_call":
            note = f" [red]{data.get('error')}[/]" if data.get("error") else ""
            branch.add(f"tool [green]{e['name']}[/] [dim]{_duration(e['duration_s'])}[/]{note}")
        elif e["kind"] == "decision":
            branch.add(f"decision [yellow]{e['name']}[/]: {data.get('reason', '')}")
        elif e["kind"] in ("gate", "answer"):
            tree.add(f"[magenta]{e['kind']} {e['name']}[/]: {data.get('question') or data.get('action', '')}")
        elif e["kind"] == "error":
            branch.add(f"[bold red]error {e['name']}[/]: {data.get('message', '')}")
        elif e["kind"] in ("metric", "lesson"):
            branch.add(f"{e['kind']} {e['name']}: {data.get('value', data.get('text', ''))}")
    return tree


def render_gate(payload: dict[str, Any], console: Console) -> None:
    gate = payload["gate"]
    if gate == "plan":
        plan = payload.get("plan") or {}
        est = plan.get("estimate") or {}
        counted = plan.get("data_estimate")  # how a knowledge goal's examples were counted
        lines = [f"objective: {plan.get('objective')}   base: {plan.get('base_model')}",
                 "sources: " + ", ".join(f"{s['kind']}:{s['location']}" for s in plan.get("sources", [])),
                 f"steps: {' → '.join(plan.get('steps', []))}",
                 f"data: ~{est.get('examples')} examples, ~{est.get('tokens')} tokens"
                 + (f" ({escape(counted['basis'])})" if counted else ""),
                 f"sweep: {len(plan.get('grid', []))} trials × {est.get('sweep_steps_per_trial')} steps; "
                 f"train: {est.get('train_steps')} steps",
                 f"estimate: {json.dumps(est.get('minutes', {}))} minutes"
                 + (f", GPU cost ~${est['gpu_cost_usd']}" if est.get("gpu_cost_usd") else "")]
        for trial in plan.get("grid", []):
            lines.append(f"  trial {trial['name']}: " + ", ".join(f"{k}={v}" for k, v in trial.items() if k != "name"))
        console.print(Panel("\n".join(lines), title="plan"))
    elif gate == "winner":
        sweep = payload.get("sweep") or {}
        where = f", {sweep['executor']}" if sweep.get("executor") else ""
        table = Table(title=f"sweep{where} (winner {sweep.get('winner')}: {sweep.get('reason')})")
        for column in ("trial", "config", "status", "val loss", "train loss", "metric", "tok/s", "wall"):
            table.add_column(column)
        for t in sweep.get("trials", []):
            table.add_row(t["name"], ", ".join(f"{k}={v}" for k, v in t["overrides"].items()), t["status"],
                          _num(t["val_loss"]), _num(t["train_loss"]), _num(t["metric"]), _num(t["tokens_per_s"], 0),
                          _duration(t["wall_seconds"]))
        console.print(table)
    elif gate == "deploy":
        verdict = payload.get("verdict") or {}
        console.print(Panel("\n".join([f"verdict: {verdict.get('status')}", *verdict.get("reasons", [])]),
                            title="deploy"))
    console.print(f"[bold]{payload['question']}[/]")


def ask_at_gate(payload: dict[str, Any], console: Console) -> dict[str, Any]:
    """Show the gate, ask on the terminal, return the answer the gate node expects."""
    render_gate(payload, console)
    action = Prompt.ask("approve or reject", choices=["approve", "reject"], default="approve", console=console)
    if action == "approve":
        choice = None
        if payload["gate"] == "winner":
            choice = Prompt.ask("trial", default=(payload.get("sweep") or {}).get("winner"), console=console)
        return {"action": "approve", "choice": choice, "by": "terminal"}
    reason = Prompt.ask("reason", console=console)
    return {"action": "reject", "reason": reason, "by": "terminal"}


def render_outcome(outcome: Any, console: Console) -> None:
    if outcome.status == "paused" and outcome.payload:
        render_gate(outcome.payload, console)
    style = {"finished": "green", "paused": "yellow", "failed": "red"}.get(outcome.status, "white")
    console.print(f"[{style}]{outcome.message}[/]", highlight=False)


def _num(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"
