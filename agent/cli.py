"""The `ingrain` command line: the verbs and flags of DESIGN.md's contract, nothing imported eagerly that is heavy."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from typing import Annotated, Any

import typer
from rich.console import Console

from agent.errors import AgentError
from memory.errors import StoreError
from tools.errors import ToolError

app = typer.Typer(help="ingrain: turn a goal into a trained, evaluated and deployed small model.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="The model registry: list, promote, roll back.", invoke_without_command=True)
app.add_typer(models_app, name="models")
out = Console()
err = Console(stderr=True)
DEBUG = {"on": False}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
RunArg = Annotated[int, typer.Argument(help="Run id (see `ingrain runs`).", show_default=False)]


@app.callback()
def root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    DEBUG["on"] = debug


def emit_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, default=str, ensure_ascii=False, indent=2) + "\n")


def finish(outcome: Any, as_json: bool) -> None:
    """Print a run outcome and exit with its code (0 finished, 3 paused, 1 failed)."""
    from agent.render import render_outcome

    if as_json:
        emit_json(outcome.to_dict())
    else:
        render_outcome(outcome, out if outcome.exit_code == 0 else err)
        if outcome.exit_code == 1 and DEBUG["on"] and outcome.error_trace:
            err.print(outcome.error_trace)
    raise typer.Exit(outcome.exit_code)


def terminal_ask(policy: str, as_json: bool) -> Any:
    """Inline gate questions on a terminal under the interactive policy; otherwise pause (exit 3)."""
    if policy != "interactive" or as_json or not sys.stdin.isatty():
        return None
    from agent.render import ask_at_gate

    return lambda payload: ask_at_gate(payload, err)


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
    """Runs, newest first: status, gate, model, verdict, wall time."""
    from agent.render import runs_table
    from memory import Store

    with Store.open() as store:
        rows = store.runs()
    keep = ("id", "goal", "policy", "status", "gate", "model", "verdict", "error", "created", "wall_seconds")
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
    from memory import Workspace

    path = Workspace.from_env().run_dir(run_id) / "report.html"
    if not path.exists():
        raise AgentError(f"Run {run_id} has no report yet: reports are written when a run reaches reflect. "
                         f"`ingrain runs` shows where it stands.")
    out.print(str(path), highlight=False, soft_wrap=True)


@models_app.callback()
def models(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List model versions (production marked); `promote NAME` and `rollback` change production."""
    if ctx.invoked_subcommand:
        return
    from agent.render import models_table
    from memory import Store

    with Store.open() as store:
        rows = store.models()
    if as_json:
        emit_json({"models": rows})
    else:
        out.print(models_table(rows))


@models_app.command("promote")
def models_promote(name: Annotated[str, typer.Argument(help="Version name from `ingrain models`.")]) -> None:
    """Make NAME the production version; a running `ingrain serve` switches to it without a restart."""
    from memory import Store

    with Store.open() as store:
        row = store.promote(name)
    out.print(f"{row['name']} is now in production.")


@models_app.command("rollback")
def models_rollback() -> None:
    """Put the previous production version back, instantly."""
    from memory import Store

    with Store.open() as store:
        row = store.rollback()
    out.print(f"Rolled back: {row['name']} is in production again.")


@models_app.command("export")
def models_export(
    name: Annotated[str, typer.Argument(help="Version name from `ingrain models` (or a base model name).",
                                        show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="hf: a Hugging Face folder for vLLM / transformers; "
                                     "gguf: one file for llama.cpp / Ollama / LM Studio.")] = "hf",
    quant: Annotated[str | None, typer.Option("--quant", help="GGUF only: f32 | f16 (default; as the float "
                                              "model) | q8_0 (half of f16) | q4_k_m (needs llama-cpp-python).")]
    = None,
    out_path: Annotated[str | None, typer.Option("--out", help="Folder (hf), or .gguf file or folder (gguf). "
                                                 "Default: $INGRAIN_HOME/exports/.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a version with its adapter merged in: an HF folder for vLLM, or a GGUF file for llama.cpp."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from memory import Store
    from tools.export import export_version

    store = Store.open()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task(f"exporting {name}", total=None)
            result = export_version(
                store, name, fmt, out=Path(out_path) if out_path else None, quant=quant,
                progress=lambda stage, done, total: bar.update(task, description=stage, completed=done,
                                                               total=total))
    finally:
        store.close()
    if as_json:
        emit_json(result.to_dict())
        return
    size = f"{result.bytes / 1e6:,.1f} MB"
    out.print(f"Exported {result.name} ({result.kind}) as {result.format}"
              f"{' ' + result.quant if result.quant else ''}: {result.path} ({size}, {result.seconds:.1f}s)",
              highlight=False, soft_wrap=True)
    if result.format == "hf":
        out.print(f"Serve it on a GPU machine: vllm serve {result.path} --served-model-name {result.name}",
                  highlight=False, soft_wrap=True)
    else:
        out.print(f"Serve it with llama.cpp: llama-server -m {result.path}", highlight=False, soft_wrap=True)


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


def _mount() -> None:
    from agent.cli_data import data_app
    from agent.cli_serve import register

    app.add_typer(data_app, name="data")
    register(app)


_mount()


def main() -> None:
    # Our own progress lines replace the libraries' bars (weights loading, dataset packing).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecations are not the user's to fix
    try:
        app()
    except (AgentError, ToolError, StoreError) as exc:
        if DEBUG["on"]:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted: `ingrain runs` shows the run; `ingrain resume RUN` continues it.")
        sys.exit(130)


if __name__ == "__main__":
    main()
