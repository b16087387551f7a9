"""`ingrain nightly` and `ingrain schedule`: the unattended self-improvement loop and how to run it nightly."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.common import JsonOpt, app, emit_json, err, out


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD or an ISO date-time "
                                 "(2026-12-01T08:00).", param_hint="--since") from None


@app.command()
def nightly(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Mine and say what would run; change nothing.")]
    = False,
    budget_minutes: Annotated[float | None, typer.Option("--budget-minutes", min=1, help="Wall-time cap for "
                                                         "the whole nightly (default 60).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only mine requests since DATE.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mine the usage log, train each new pattern's goal, and promote only a model that beats production.

    Exit codes: 0 done (also when there was nothing to do), 1 failed, 75 another nightly holds the lock.
    """
    from agent.nightly import run_nightly

    outcome = run_nightly(dry_run=dry_run, budget_minutes=budget_minutes, since=_since(since))
    if as_json:
        emit_json(outcome.to_dict())
        raise typer.Exit(outcome.exit_code)
    console = out if outcome.exit_code == 0 else err
    if outcome.patterns:
        table = Table("pattern", "action", "examples", "run", "verdict", "promoted", "reason", title="nightly")
        for p in outcome.patterns:
            table.add_row(escape(p.pattern_id), p.action, str(p.data.get("n_examples", "")),
                          str(p.run_id or ""), p.verdict or "", "yes" if p.promoted else "no", escape(p.reason))
        console.print(table)
        for p in outcome.patterns:
            console.print(f"  {escape(p.pattern_id)}: {escape(p.goal)}", highlight=False)
    console.print(escape(outcome.message), highlight=False)
    if outcome.report:
        console.print(f"Report: {outcome.report}", highlight=False, soft_wrap=True)
    raise typer.Exit(outcome.exit_code)


@app.command()
def schedule(
    at: Annotated[str, typer.Option("--at", help="Time of day, HH:MM (local time).")] = "02:30",
    install: Annotated[bool, typer.Option("--install", help="Install it: a systemd user timer when a user "
                                          "session answers, else the cron line.")] = False,
    budget_minutes: Annotated[float | None, typer.Option("--budget-minutes", min=1, help="Passed to the "
                                                         "nightly.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the cron line (with flock) and the systemd user timer that run `ingrain nightly`; --install one."""
    from memory import Workspace
    from tools.schedule import build_schedule
    from tools.schedule import install as install_schedule

    home = Workspace.from_env().ensure().root
    plan = build_schedule(at, home, budget_minutes=budget_minutes)
    installed = install_schedule(plan, home) if install else None
    if as_json:
        emit_json({**plan.to_dict(), "installed": installed})
        return
    out.print("# cron (crontab -e):", highlight=False)
    out.print(plan.cron_line, highlight=False, soft_wrap=True)
    out.print(f"\n# systemd user units, in {plan.unit_dir}/:", highlight=False)
    out.print("# ingrain-nightly.service\n" + plan.service, highlight=False, soft_wrap=True)
    out.print("# ingrain-nightly.timer\n" + plan.timer, highlight=False, soft_wrap=True)
    if installed:
        err.print(installed.capitalize() + ".", highlight=False)
    else:
        err.print("Nothing installed; `ingrain schedule --install` installs the timer (or the cron line).")
