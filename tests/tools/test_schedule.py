"""`ingrain schedule`: the cron line and systemd timer it prints, and what --install does with them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools.errors import ToolError
from tools.schedule import build_schedule, install, parse_at


def test_schedule_runs_the_nightly_under_flock_at_the_given_time(tmp_path) -> None:
    plan = build_schedule("2:05", tmp_path / "home", budget_minutes=45, workdir=tmp_path)
    assert plan.cron_line.startswith("5 2 * * * ") and "flock -n" in plan.cron_line
    assert f"INGRAIN_HOME={tmp_path / 'home'}" in plan.cron_line and "nightly --budget-minutes 45" in plan.cron_line
    assert "OnCalendar=*-*-* 02:05:00" in plan.timer and "Persistent=true" in plan.timer
    assert f"ExecStart={plan.command}" in plan.service and "Type=oneshot" in plan.service
    for bad in ("25:00", "7pm", "12:60"):
        with pytest.raises(ToolError, match="HH:MM"):
            parse_at(bad)


def _stub(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_install_writes_the_user_timer_and_enables_it(tmp_path, monkeypatch) -> None:
    # A recording `systemctl` stands in for the user's systemd (no session runs in a test container).
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    _stub(bin_dir, "systemctl", f'echo "$@" >> {calls}\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    plan = build_schedule("03:30", tmp_path / "home")
    done = install(plan, tmp_path / "home")
    units = tmp_path / "config" / "systemd" / "user"
    assert "systemd user timer" in done
    assert (units / "ingrain-nightly.timer").read_text() == plan.timer
    assert (units / "ingrain-nightly.service").read_text() == plan.service
    assert calls.read_text().splitlines() == ["--user show-environment", "--user daemon-reload",
                                              "--user enable --now ingrain-nightly.timer"]


def test_install_without_systemd_or_cron_says_so(tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "systemctl", "exit 1\n")  # no user session
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolError, match="nothing was installed"):
        install(build_schedule("03:30", tmp_path / "home"), tmp_path / "home")


def test_schedule_cli_prints_both_and_json_is_one_document(workspace) -> None:
    done = subprocess.run([sys.executable, "-m", "agent.cli", "schedule", "--at", "04:10", "--json"],
                          capture_output=True, text=True, env={**os.environ, "INGRAIN_HOME": str(workspace.root)})
    document = json.loads(done.stdout)
    assert done.returncode == 0 and document["at"] == "04:10" and document["installed"] is None
    assert document["cron_line"].startswith("10 4 * * *")
    bad = subprocess.run([sys.executable, "-m", "agent.cli", "schedule", "--at", "4pm"], capture_output=True,
                         text=True, env={**os.environ, "INGRAIN_HOME": str(workspace.root)})
    assert bad.returncode != 0 and "HH:MM" in bad.stderr
