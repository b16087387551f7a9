"""What every command module shares: the consoles, the --json and run-id options, JSON output, run outcomes."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console

app = typer.Typer(help="ingrain: turn a goal into a trained, evaluated and deployed small model.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
out = Console()
err = Console(stderr=True)
DEBUG = {"on": False}
# Set by main() when --json is on the command line, so an error before a run starts is JSON too.
JSON_MODE = {"on": False}
# Under --json, main() keeps the real stdout here for the one document and points fd 1 at stderr.
JSON_OUT: dict[str, TextIO | None] = {"stream": None}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
RunArg = Annotated[int, typer.Argument(help="Run id (see `ingrain runs`).", show_default=False)]


def emit_json(document: dict[str, Any]) -> None:
    stream = JSON_OUT["stream"] or sys.stdout
    stream.write(json.dumps(document, default=str, ensure_ascii=False, indent=2) + "\n")
    stream.flush()


def reserve_stdout_for_json() -> None:
    """Keep stdout for the one JSON document: anything else written to it goes to stderr instead.

    A library's progress print, llama.cpp's C-level logging or a child process would otherwise land between
    the script and its document, so this moves file descriptor 1 itself, not only `sys.stdout`.
    """
    sys.stdout.flush()
    JSON_OUT["stream"] = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)


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


def emit_error(kind: str, message: str, exit_code: int) -> None:
    """The --json form of an error: one document on stdout, so a script never has to parse stderr."""
    emit_json({"error": {"type": kind, "message": message, "exit_code": exit_code}})
