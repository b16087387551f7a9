"""The `ingrain` command line: the verbs and flags of DESIGN.md's contract, one module per command group.

Nothing heavy is imported at module level, so `ingrain --help` is instant. Every error leaves as a message
(a traceback only with --debug); with --json it leaves as one JSON document on stdout: {"error": {...}}.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from typing import Annotated

import typer

# isort: off
# Each module adds its commands to `app`, in the order `ingrain --help` lists them.
from agent.cli import runs, models, data, serve, patterns, nightly, console  # noqa: F401
# isort: on
from agent.cli.common import DEBUG, JSON_MODE, app, emit_error, err, reserve_stdout_for_json
from agent.errors import AgentError
from memory.errors import StoreError
from tools.errors import ToolError

RUN_COMMANDS = ("run", "approve", "reject", "resume", "chat")
"""Commands that drive an agent run, so an interrupted one is resumable with `ingrain resume`."""


@app.callback()
def root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    DEBUG["on"] = debug


def main() -> None:
    # Our own progress lines replace the libraries' bars (weights loading, dataset packing).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecations are not the user's to fix
    JSON_MODE["on"] = "--json" in sys.argv[1:]
    if JSON_MODE["on"]:
        reserve_stdout_for_json()
    try:
        code = app(standalone_mode=False)  # returns a command's exit code instead of calling sys.exit
    except typer.Exit as exc:
        code = exc.exit_code
    # Usage errors: a missing argument, an unknown option, a bad value. Typer carries its own copy of click,
    # so these are typer's classes, not the `click` package's (which typer never raises).
    except typer.TyperException as exc:
        if JSON_MODE["on"]:
            emit_error("usage", exc.format_message(), exc.exit_code)
        else:
            show_usage_error(exc)
        sys.exit(exc.exit_code)
    except (AgentError, ToolError, StoreError) as exc:
        if DEBUG["on"]:
            traceback.print_exc(file=sys.stderr)
        if JSON_MODE["on"]:
            emit_error(type(exc).__name__, str(exc), 1)
        else:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    if code == 130:  # typer turns Ctrl-C inside a command into exit code 130
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
        if command in RUN_COMMANDS:
            err.print("interrupted: `ingrain runs` shows the run; `ingrain resume RUN` continues it.")
        elif command == "nightly":
            err.print("interrupted: production is unchanged; the next `ingrain nightly` resumes its run.")
        else:
            err.print("interrupted.")
    sys.exit(code if isinstance(code, int) else 0)


def show_usage_error(exc: typer.TyperException) -> None:
    """Typer's own panel for usage errors, as in standalone mode; plain text where it is missing."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `ingrain` alone: the message is the help text
        exc.show()
        return
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
    except (ImportError, AttributeError):
        exc.show()


if __name__ == "__main__":
    main()
