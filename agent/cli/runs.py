"""Run commands: run, chat, approve, reject, resume, runs, trace, report, lessons."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from agent.cli.common import JsonOpt, RunArg, app, emit_json, err, finish, out, terminal_ask
from agent.errors import AgentError


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="What the model should do, in plain words.", show_default=False)],
    data: Annotated[list[str] | None, typer.Option("--data", help="Dataset file or folder; repeatable.")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base model name or local folder.")] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="interactive | auto | nightly (default: "
                                               "what the goal says, else interactive).")] = None,
    budget_minutes: Annotated[float | None, typer.Option("--budget-minutes", help="Wall-time budget.")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Drop invalid dataset records instead "
                                                "of refusing to train.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Plan, gather, build data, sweep, train, evaluate and deploy a model for GOAL."""
    from agent import runner

    outcome = runner.start(goal, data_paths=data, base=base, policy=policy, budget_minutes=budget_minutes,
                           skip_invalid=skip_invalid, ask=terminal_ask(policy or "interactive", as_json))
    finish(outcome, as_json)


@app.command()
def chat(policy: Annotated[str, typer.Option("--policy", help="Policy for goals started here.")] = "interactive"
         ) -> None:
    """Goals and questions in a chat loop; gates are asked inline."""
    from rich.prompt import Prompt

    from agent.chat import ChatSession
    from agent.render import ask_at_gate

    session = ChatSession(ask=(lambda payload: ask_at_gate(payload, err)) if sys.stdin.isatty() else None,
                          policy=policy)
    out.print(f"ingrain chat, {session.mode}. Type a goal, a question, `help` or `quit`.")
    while True:
        try:
            line = Prompt.ask("[bold]you[/]", console=out) if sys.stdin.isatty() else sys.stdin.readline()
        except EOFError:
            break
        if line == "" and not sys.stdin.isatty():
            break
        if line.strip().lower() in ("quit", "exit", "q"):
            break
        reply = session.handle(line)
        if reply:
            out.print(reply, highlight=False)


@app.command()
def approve(run_id: RunArg, choice: Annotated[str | None, typer.Option("--choice", help="Pick another sweep "
                                                                       "trial at the winner gate.")] = None,
            as_json: JsonOpt = False) -> None:
    """Approve the gate a paused run waits at, and continue it in the foreground."""
    from agent import runner

    finish(runner.approve(run_id, choice=choice, ask=terminal_ask("interactive", as_json)), as_json)


@app.command()
def reject(run_id: RunArg,
           reason: Annotated[str, typer.Option("--reason", help="Why; the planner reads it when it re-plans.")],
           stop: Annotated[bool, typer.Option("--stop", help="End the run instead of re-planning.")] = False,
           as_json: JsonOpt = False) -> None:
    """Reject a paused run's gate: back to plan with the reason, or stop it with --stop."""
    from agent import runner

    finish(runner.reject(run_id, reason=reason, stop=stop, ask=terminal_ask("interactive", as_json)), as_json)


@app.command()
def resume(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """Continue a run that failed or was killed, from its last checkpoint (finished steps are not redone)."""
    from agent import runner

    finish(runner.resume(run_id, ask=terminal_ask("interactive", as_json)), as_json)


@app.command()
def runs(as_json: JsonOpt = False) -> None:
    """Runs and nightlies, newest first: status, gate, model, verdict, wall time."""
    from agent.render import runs_table
    from memory import Store

    with Store.open() as store:
        rows = store.runs()
    keep = ("id", "kind", "parent_id", "goal", "policy", "status", "gate", "model", "verdict", "error", "created",
            "wall_seconds")
    rows = [{k: r[k] for k in keep} for r in rows]
    if as_json:
        emit_json({"runs": rows})
    else:
        out.print(runs_table(rows))


@app.command()
def trace(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """The agent trace of a run: every node, tool call, decision, gate and error, with timings."""
    from agent.render import trace_tree
    from memory import Store

    with Store.open() as store:
        run_row, events = store.run(run_id), store.events(run_id)
    if as_json:
        emit_json({"run": run_row, "events": events})
    else:
        out.print(trace_tree(run_row, events))


@app.command()
def report(run_id: RunArg) -> None:
    """Print the path of a run's HTML report (plan, data, sweep, loss curves, evaluation, samples)."""
    from memory import Store, Workspace

    with Store.open() as store:
        store.run(run_id)  # a run that does not exist says so, rather than "no report yet"
    path = Workspace.from_env().run_dir(run_id) / "report.html"
    if not path.exists():
        raise AgentError(f"Run {run_id} has no report yet: reports are written when a run reaches reflect. "
                         f"`ingrain runs` shows where it stands.")
    out.print(str(path), highlight=False, soft_wrap=True)


@app.command()
def lessons(as_json: JsonOpt = False) -> None:
    """What earlier runs taught the planner (sweep winners, speeds, failures)."""
    from memory import Store

    with Store.open() as store:
        rows = store.lessons(limit=200)
    if as_json:
        emit_json({"lessons": rows})
        return
    for row in rows:
        out.print(f"[dim]{time.strftime('%Y-%m-%d %H:%M', time.localtime(row['created']))}[/] "
                  f"run {row['run_id']} [bold]{row['topic']}[/]: {row['text']}")
    if not rows:
        out.print("No lessons yet: they are written when a run reaches its reflect step.")
