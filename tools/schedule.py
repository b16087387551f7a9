"""Run `ingrain nightly` every night: a cron line (with flock) and a systemd user timer (Persistent=true).

Both wrap the command in `flock -n` on a file under INGRAIN_HOME, so two schedulers firing at once (or a
cron line and a timer both installed) start one nightly; the nightly also takes its own lock.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memory.workspace import atomic_write_text
from tools.errors import ToolError

UNIT = "ingrain-nightly"
CRON_MARK = "# ingrain-nightly"


@dataclass
class Schedule:
    """What `ingrain schedule` prints or installs."""

    at: str
    command: str
    """The shell command both schedulers run."""
    cron_line: str
    service: str
    """systemd user service unit text."""
    timer: str
    """systemd user timer unit text."""
    unit_dir: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_at(at: str) -> tuple[int, int]:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at.strip())
    if not match:
        raise ToolError(f"--at {at!r} is not a time of day: use HH:MM in 24-hour form, e.g. 02:30.")
    return int(match.group(1)), int(match.group(2))


def ingrain_command() -> list[str]:
    """How this installation is started: the `ingrain` script beside this Python, else `python -m agent.cli`."""
    script = Path(sys.executable).with_name("ingrain")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "agent.cli"]


def unit_dir() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def build_schedule(at: str, home: Path, *, budget_minutes: float | None = None,
                   workdir: Path | None = None) -> Schedule:
    """The cron line and systemd units that run the nightly at `at` (local time) for workspace `home`."""
    hour, minute = parse_at(at)
    workdir = (workdir or Path.cwd()).resolve()
    flock = shutil.which("flock") or "flock"
    nightly = [*ingrain_command(), "nightly"]
    if budget_minutes:
        nightly += ["--budget-minutes", f"{budget_minutes:g}"]
    lock = home / "nightly.schedule.lock"
    log = home / "logs" / "nightly.log"
    command = " ".join(shlex.quote(p) for p in [flock, "-n", str(lock), *nightly])
    cron = (f"{minute} {hour} * * * cd {shlex.quote(str(workdir))} && INGRAIN_HOME={shlex.quote(str(home))} "
            f"{command} >> {shlex.quote(str(log))} 2>&1 {CRON_MARK}")
    service = (f"[Unit]\nDescription=ingrain nightly: mine the usage log, retrain, promote only a better model\n\n"
               f"[Service]\nType=oneshot\nWorkingDirectory={workdir}\nEnvironment=INGRAIN_HOME={home}\n"
               f"ExecStart={command}\nNice=10\n")
    timer = (f"[Unit]\nDescription=Run {UNIT}.service every night at {hour:02d}:{minute:02d}\n\n"
             f"[Timer]\nOnCalendar=*-*-* {hour:02d}:{minute:02d}:00\nPersistent=true\n"
             f"Unit={UNIT}.service\n\n[Install]\nWantedBy=timers.target\n")
    return Schedule(f"{hour:02d}:{minute:02d}", command, cron, service, timer, str(unit_dir()))


def install(schedule: Schedule, home: Path) -> str:
    """Install the systemd user timer when a user session answers, else the cron line; what was done."""
    (home / "logs").mkdir(parents=True, exist_ok=True)
    systemctl = shutil.which("systemctl")
    if systemctl and _run([systemctl, "--user", "show-environment"]).returncode == 0:
        folder = Path(schedule.unit_dir)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / f"{UNIT}.service", schedule.service)
        atomic_write_text(folder / f"{UNIT}.timer", schedule.timer)
        for args in (["daemon-reload"], ["enable", "--now", f"{UNIT}.timer"]):
            done = _run([systemctl, "--user", *args])
            if done.returncode != 0:
                raise ToolError(f"`systemctl --user {' '.join(args)}` failed: {done.stderr.strip()}")
        timer = folder / f"{UNIT}.timer"
        return f"installed the systemd user timer {timer} (daily at {schedule.at}, Persistent=true)"
    crontab = shutil.which("crontab")
    if crontab:
        current = _run([crontab, "-l"])
        lines = [line for line in (current.stdout if current.returncode == 0 else "").splitlines()
                 if CRON_MARK not in line]
        done = subprocess.run([crontab, "-"], input="\n".join([*lines, schedule.cron_line]) + "\n", text=True,
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise ToolError(f"`crontab -` failed: {done.stderr.strip()}")
        return f"installed the cron line (daily at {schedule.at}); `crontab -l` shows it"
    raise ToolError("Neither a systemd user session (`systemctl --user`) nor `crontab` is available here, so "
                    "nothing was installed. Add the cron line that `ingrain schedule` prints to your scheduler.")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
