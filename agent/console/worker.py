"""Continue runs from the console in background threads, through the same runner calls as `ingrain approve/reject/
resume/run`; one job per run at a time, and an answer only for the very pause the person saw."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.errors import AgentError
from memory import Store, StoreError

log = logging.getLogger("ingrain.console")
T = TypeVar("T")
BUSY_RETRIES = 4
"""Writes that still find the store locked after SQLite's own 30 s wait are tried again this many times."""


class Conflict(AgentError):
    """The action cannot be taken any more (someone else answered, or the run moved on); nothing changed."""


@dataclass
class Job:
    """One background action on a run, as the run page shows it."""

    run_id: int | None
    action: str
    """approve | reject | stop | resume | start."""
    by: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    outcome: str | None = None
    """The runner's message once it returns (paused at the next gate, finished, failed)."""
    error: str | None = None
    """Why the job could not run at all (e.g. another process answered first)."""

    @property
    def running(self) -> bool:
        return self.finished is None


def with_retry(write: Callable[[], T], attempts: int = BUSY_RETRIES, wait: float = 0.5) -> T:
    """Call `write`; if SQLite still reports the store busy (a training process holding it), try again."""
    for attempt in range(attempts):
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if attempt == attempts - 1:
                raise StoreError("The store stayed busy (another process is writing to it); nothing was changed. "
                                 "Try again in a moment.") from exc
            time.sleep(wait * (attempt + 1))
    raise AssertionError("unreachable")


def latest_pause(store: Store, run_id: int) -> int | None:
    """The id of the gate event the run's current pause recorded: what a gate form answers, and nothing later."""
    gates = store.events(run_id, kinds=["gate"])
    return gates[-1]["id"] if gates else None


class Worker:
    """Background threads that drive runs; at most one job per run, and the latest job of each run is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[int, Job] = {}

    def job(self, run_id: int) -> Job | None:
        return self.jobs.get(run_id)

    def busy(self, run_id: int) -> bool:
        job = self.jobs.get(run_id)
        return job is not None and job.running

    def answer(self, run_id: int, *, pause: int | None, action: str, by: str, choice: str | None = None,
               reason: str = "") -> Job:
        """Answer the gate run `run_id` waits at, if it still waits at the pause `pause` the person saw."""
        from agent import runner

        if action not in ("approve", "reject", "stop"):
            raise AgentError(f"Unknown answer {action!r}: approve, reject or stop.")
        if action != "approve" and not reason.strip():
            raise AgentError("Say why in the reason box: the planner reads it when it plans again.")
        with self._lock:  # two browsers pressing at once: the first one through this lock wins
            if self.busy(run_id):
                raise Conflict(f"Run {run_id}'s gate is already being answered by {self.jobs[run_id].by} "
                               "(another browser pressed first); this answer was not used.")
            with Store.open() as store:
                run = store.run(run_id)
                current = latest_pause(store, run_id)
            if run["status"] != "paused" or current != pause:
                now = f"it is {run['status']}" + (f" at the {run['gate']} gate" if run["status"] == "paused" else "")
                raise Conflict(f"This gate of run {run_id} was already answered (from the command line or "
                               f"another browser); {now}. Nothing was changed.")
            job = self.jobs[run_id] = Job(run_id, action, by)
        if action == "approve":
            call = lambda: runner.approve(run_id, choice=choice or None, by=by)  # noqa: E731
        else:
            call = lambda: runner.reject(run_id, reason=reason, stop=action == "stop", by=by)  # noqa: E731
        self._spawn(job, call)
        return job

    def resume(self, run_id: int, *, by: str) -> Job:
        """Continue a failed or killed run from its checkpoint, as `ingrain resume` does."""
        from agent import runner

        with self._lock:
            if self.busy(run_id):
                raise Conflict(f"Run {run_id} is already being continued from this console.")
            with Store.open() as store:
                run = store.run(run_id)
            if run["status"] not in ("failed", "running", "created"):
                raise Conflict(f"Run {run_id} is {run['status']}; only a failed or interrupted run is resumed.")
            job = self.jobs[run_id] = Job(run_id, "resume", by)
        self._spawn(job, lambda: runner.resume(run_id))
        return job

    def start(self, goal: str, *, by: str, policy: str | None, data_paths: list[str], base: str | None,
              budget_minutes: float | None, wait: float = 60.0) -> int:
        """Start a run for `goal` as `ingrain run` does; returns its id as soon as the run exists."""
        from agent import runner

        created = threading.Event()
        job = Job(None, "start", by)

        def on_created(run_id: int) -> None:
            job.run_id = run_id
            with self._lock:
                self.jobs[run_id] = job
            created.set()

        def call() -> Any:
            return runner.start(goal, data_paths=data_paths, base=base, policy=policy,
                                budget_minutes=budget_minutes, on_created=on_created)

        thread = self._spawn(job, call)
        while not created.wait(0.05):
            if job.error is not None:
                raise AgentError(job.error)
            if not thread.is_alive() and job.run_id is None:
                raise AgentError("The run could not be started; see the console's log.")
            if time.time() - job.started > wait:
                raise AgentError("The run did not start within a minute; see the console's log.")
        assert job.run_id is not None
        return job.run_id

    def _spawn(self, job: Job, call: Callable[[], Any]) -> threading.Thread:
        def work() -> None:
            try:
                outcome = with_retry(call)
                job.outcome = outcome.message
            except (AgentError, StoreError) as exc:
                job.error = str(exc)
            except Exception as exc:  # the thread must record it: nobody else will see it
                log.error("console job %s on run %s failed:\n%s", job.action, job.run_id, traceback.format_exc())
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.finished = time.time()

        # A daemon thread: stopping the console must not wait for a training run; a run cut off that way is
        # left `running` with a dead owner, which `ingrain resume` (or the Resume button) continues.
        thread = threading.Thread(target=work, name=f"ingrain-console-{job.action}-{job.run_id}", daemon=True)
        thread.start()
        return thread
