"""Live bars on stderr for the tools' `progress(stage, done, total)` callbacks: count, rate and ETA per stage."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tools.progress import Progress as ProgressCallback


class _Rate(ProgressColumn):
    """Units per second over the last few updates, as rich measures them."""

    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "–/s", style="progress.data.speed")


class LiveBars:
    """A `progress(stage, done, total)` callback that draws one bar per stage it is told about.

    The bars start with the first report, not before: a tool may run a crawl, whose own live line must be
    gone before these start (rich shows one live display at a time).
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.bars: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()  # the teacher reports from its worker threads

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            if self.bars is None:
                self.bars = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                                     _Rate(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=False)
                self.bars.start()
            if stage not in self.tasks:
                self.tasks[stage] = self.bars.add_task(f"{self.label} {stage}", total=total)
            self.bars.update(self.tasks[stage], completed=done, total=total)

    def close(self) -> None:
        with self.lock:
            if self.bars is not None:
                self.bars.stop()

    def __str__(self) -> str:  # how the callback reads in a trace event's arguments
        return f"live progress ({self.label})"


@contextlib.contextmanager
def live_progress(enabled: bool, label: str) -> Iterator[ProgressCallback | None]:
    """A callback that shows each stage as a bar on stderr while the block runs, or None when progress is off.

    stderr keeps stdout clean for --json; where stderr is not a terminal rich draws the bars once, when they
    stop, so a log still says how far each stage got.
    """
    if not enabled:
        yield None
        return
    bars = LiveBars(label)
    try:
        yield bars
    finally:
        bars.close()
