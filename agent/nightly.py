"""The nightly: mine the usage log, turn each new pattern into an agent run, promote only a better model.

One nightly at a time (an exclusive `flock` on `INGRAIN_HOME/nightly.lock`; a second one exits at once).
Each pattern's run is a normal agent run under the `nightly` policy: no gates, a budget cap, trained from
the production version when there is one, and judged against production on the run's own sealed hold-out
from the log plus the regression suite; only a pass is promoted, so a regression never reaches production.
The nightly is itself a row in `runs` (kind `nightly`) with a report; a nightly killed half-way is marked
interrupted by the next one, which resumes the unfinished pattern runs from their checkpoints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent import runner
from agent.errors import AgentError
from memory import Store, Workspace
from memory.patterns import actionable, mark_pattern
from memory.routes import set_route
from memory.store import process_alive
from tools.data.from_log import LogExamples, examples_from_log

LOCK_FILE = "nightly.lock"
EXIT_LOCKED = 75
"""EX_TEMPFAIL: another nightly holds the lock; try again later."""
DEFAULT_BUDGET_MINUTES = 60.0
MIN_RUN_MINUTES = 4.0
"""A pattern run gets at least this much, or it waits for the next nightly."""
ROUTE_AGREEMENT = 0.8
"""Hold-out agreement with the upstream a promoted distillation needs before the proxy may route to it."""
NIGHTLY_GOAL = "nightly: mine the usage log, retrain on new patterns, promote only a better model"
KIND_ORDER = ("system_prompt", "negative_feedback", "cluster", "upstream", "drift")
"""Which of two equally scored patterns runs first: the narrower goal covers the other's requests."""
COVERED = 0.5
"""A pattern whose requests are at least this share of an earlier pattern's is handled by that one's run."""


@dataclass
class PatternRun:
    """What the nightly did with one actionable pattern."""

    pattern_id: str
    goal: str
    action: str
    """ran | resumed | too_small | deferred | would_run (dry run)."""
    data: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    status: str | None = None
    verdict: str | None = None
    model: str | None = None
    promoted: bool = False
    reason: str = ""
    minutes: float | None = None
    route: dict[str, Any] | None = None


@dataclass
class NightlyOutcome:
    """One nightly's result, as `ingrain nightly --json` prints it."""

    status: str
    """finished | nothing_to_do | dry_run | locked | failed."""
    exit_code: int
    message: str
    nightly_id: int | None = None
    mining: dict[str, Any] = field(default_factory=dict)
    patterns: list[PatternRun] = field(default_factory=list)
    production_before: str | None = None
    production_after: str | None = None
    recovered: list[int] = field(default_factory=list)
    """Nightlies found interrupted and marked so."""
    report: str | None = None
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def nightly_lock(workspace: Workspace) -> Iterator[bool]:
    """Hold the nightly lock for the block; yields False (at once) when another process holds it."""
    path = workspace.root / LOCK_FILE
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(workspace: Workspace) -> str:
    path = workspace.root / LOCK_FILE
    return path.read_text().strip() if path.is_file() else "?"


def run_nightly(*, dry_run: bool = False, budget_minutes: float | None = None,
                since: float | None = None) -> NightlyOutcome:
    """Mine, run each new pattern's goal, promote only what beats production; see the module docstring."""
    ws = Workspace.from_env().ensure()
    budget = float(budget_minutes or DEFAULT_BUDGET_MINUTES)
    if budget <= 0:
        raise AgentError(f"--budget-minutes must be positive, not {budget_minutes}.")
    with nightly_lock(ws) as held:
        if not held:
            return NightlyOutcome("locked", EXIT_LOCKED, f"Another nightly is running (process "
                                  f"{lock_holder(ws)}); this one exits without doing anything.")
        return _nightly(ws, dry_run=dry_run, budget=budget, since=since)


def _nightly(ws: Workspace, *, dry_run: bool, budget: float, since: float | None) -> NightlyOutcome:
    started = time.time()
    deadline = started + budget * 60
    with Store.open(ws) as store:
        recovered = [] if dry_run else _recover(store)
        production = store.production_model()
        before = production["name"] if production else None
        mining = _mine(store, since=since, save=not dry_run)
        todo, covered = _deduplicate([p for p in mining.pop("patterns") if actionable(p)])
        resumable = _unfinished_runs(store, recovered)
    outcome = NightlyOutcome("finished", 0, "", mining=mining, production_before=before, recovered=recovered)
    outcome.patterns = [PatternRun(p["id"], p["goal"], "covered", reason=f"its requests are {by}'s")
                        for p, by in covered]
    if not todo:
        outcome.status, outcome.production_after = "nothing_to_do", before
        outcome.message = _nothing_message(mining)
        outcome.wall_seconds = round(time.time() - started, 1)
        return outcome
    if dry_run:
        return _dry_run(outcome, todo, budget, started)
    with Store.open(ws) as store:
        nightly_id = store.create_run(NIGHTLY_GOAL, "nightly", spec={"budget_minutes": budget, "since": since},
                                      kind="nightly")
        store.claim_run(nightly_id)
        store.record_event(nightly_id, "metric", node="mine", name="mining", data=mining)
    outcome.nightly_id = nightly_id
    try:
        for index, pattern in enumerate(todo):
            done = _act(ws, nightly_id, pattern, index, len(todo), deadline, resumable)
            outcome.patterns.append(done)
            if done.status == "finished":
                with Store.open(ws) as store:
                    for other, by in covered:
                        if by == pattern["id"]:
                            mark_pattern(store, other["id"], "handled", run_id=done.run_id)
    except BaseException as exc:
        with Store.open(ws) as store:
            store.record_event(nightly_id, "error", name=type(exc).__name__,
                               data={"message": str(exc), "traceback": traceback.format_exc()[-4000:]})
            store.release_run(nightly_id, "failed", error=f"{type(exc).__name__}: {exc}",
                              wall_seconds=time.time() - started)
        raise
    return _finish(ws, outcome, started)


def _deduplicate(found: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Patterns to run, best first, and those whose requests another one already trains on (with its id).

    One request can belong to several kinds (a baked system prompt's traffic is also the upstream's); a
    second run on the same requests would only spend the budget twice.
    """
    ordered = sorted(found, key=lambda p: (-p["score"], KIND_ORDER.index(p["kind"])
                                           if p["kind"] in KIND_ORDER else len(KIND_ORDER)))
    todo: list[dict[str, Any]] = []
    covered: list[tuple[dict[str, Any], str]] = []
    owner: dict[str, str] = {}
    for pattern in ordered:
        ids = set((pattern.get("spec") or {}).get("request_ids") or [])
        owners = [owner[i] for i in ids if i in owner]
        if ids and len(owners) >= COVERED * len(ids):
            covered.append((pattern, max(set(owners), key=owners.count)))
            continue
        todo.append(pattern)
        for request_id in ids:
            owner.setdefault(request_id, pattern["id"])
    return todo, covered


def _mine(store: Store, *, since: float | None, save: bool) -> dict[str, Any]:
    from tools.patterns import mine_patterns

    result = mine_patterns(store, since=since, save=save)
    return result.to_dict()


def _recover(store: Store) -> list[int]:
    """Nightlies whose process died mid-way: mark them interrupted (production was never touched)."""
    found = []
    rows = store.db.conn.execute(
        "SELECT id, owner_pid FROM runs WHERE kind = 'nightly' AND status = 'running'").fetchall()
    for nightly_id, pid in rows:
        if pid and pid != os.getpid() and process_alive(pid):
            continue
        store.release_run(nightly_id, "failed", error="interrupted: its process stopped before it finished; "
                                                       "the next nightly resumed its unfinished runs")
        store.record_event(nightly_id, "error", name="interrupted", data={"message": "process stopped"})
        found.append(nightly_id)
    return found


def _unfinished_runs(store: Store, nightlies: list[int]) -> dict[str, int]:
    """pattern id → run id for pattern runs an interrupted nightly left unfinished."""
    out: dict[str, int] = {}
    for nightly_id in nightlies:
        for event in store.events(nightly_id, kinds=["decision"]):
            data = event.get("data") or {}
            run_id, pattern_id = data.get("run_id"), data.get("pattern_id")
            if run_id and pattern_id and store.run(run_id)["status"] not in ("finished", "rejected"):
                out[pattern_id] = run_id
    return out


def _pattern_examples(store: Store, pattern: dict[str, Any], out_path: Path) -> LogExamples:
    """The training examples the log holds for a pattern (its requests, its baked prompt stripped)."""
    spec = pattern.get("spec") or {}
    return examples_from_log(store, spec.get("request_ids") or [], out_path,
                             strip_system=bool(spec.get("strip_system")))


def _act(ws: Workspace, nightly_id: int, pattern: dict[str, Any], index: int, total: int, deadline: float,
         resumable: dict[str, int]) -> PatternRun:
    spec = pattern.get("spec") or {}
    item = PatternRun(pattern["id"], pattern["goal"], "ran")
    left = (deadline - time.time()) / 60
    share = left / max(1, total - index)
    minutes = max(share, min(left, MIN_RUN_MINUTES))
    if minutes < MIN_RUN_MINUTES:
        item.action, item.reason = "deferred", f"{left:.1f} minutes of the budget left; it waits for the next nightly"
        return item
    with Store.open(ws) as store:
        data = _pattern_examples(store, pattern, ws.run_dir(nightly_id) / f"{_slug(pattern['id'])}.jsonl")
        item.data = data.to_dict()
        if data.too_small:
            item.action, item.reason = "too_small", data.too_small
            store.record_event(nightly_id, "decision", node="nightly", name="report, not run",
                               data={"pattern_id": pattern["id"], "reason": data.too_small})
            return item
        production = store.production_model()
    clock = time.time()
    previous = resumable.get(pattern["id"])
    if previous is not None:
        item.action = "resumed"
        _note(ws, nightly_id, f"resume run {previous}", pattern, previous)
        outcome = runner.resume(previous)
    else:
        base = production["path"] if production and production["kind"] in ("merged", "full") else None
        outcome = runner.start(pattern["goal"], data_paths=[data.path], base=base, policy="nightly",
                               budget_minutes=round(minutes, 1),
                               on_created=lambda run_id: _note(ws, nightly_id, f"start run {run_id}", pattern,
                                                               run_id))
    item.minutes = round((time.time() - clock) / 60, 2)
    item.run_id, item.status, item.verdict, item.model = outcome.run_id, outcome.status, outcome.verdict, outcome.model
    with Store.open(ws) as store:
        if outcome.status != "finished":
            item.reason = outcome.message.splitlines()[0] if outcome.message else outcome.status
            store.add_lesson("nightly", f"pattern {pattern['label'] or pattern['id']}: run {outcome.run_id} "
                             f"{outcome.status}: {item.reason}", run_id=outcome.run_id,
                             data={"pattern_id": pattern["id"], "status": outcome.status})
            return item  # the pattern stays new: the next nightly resumes or retries it
        version = store.model(outcome.model) if outcome.model else None
        item.promoted = bool(version and version["status"] == "production")
        item.reason = _reason(store, outcome.run_id)
        mark_pattern(store, pattern["id"], "handled", run_id=outcome.run_id)
        if item.promoted and version and spec.get("teacher") == "upstream" and spec.get("system_hash"):
            agreement = float((version.get("metrics") or {}).get("agreement") or 0.0)
            match = {"system_hash": spec["system_hash"], "system_hashes": spec.get("system_hashes") or [],
                     "strip_system": bool(spec.get("strip_system"))}
            item.route = set_route(store, pattern["id"], match=match,
                                   local_model=version["name"], agreement=agreement, threshold=ROUTE_AGREEMENT,
                                   upstream_model=spec.get("upstream_model"))
        gain = _gain(version)
        store.add_lesson("nightly", f"pattern {pattern['label'] or pattern['id']} ({pattern['count']} requests): "
                         f"run {outcome.run_id} {'promoted' if item.promoted else 'not promoted'} "
                         f"in {item.minutes} min; {item.reason}", run_id=outcome.run_id,
                         data={"pattern_id": pattern["id"], "promoted": item.promoted, "gain": gain,
                               "minutes": item.minutes})
    return item


def _note(ws: Workspace, nightly_id: int, what: str, pattern: dict[str, Any], run_id: int) -> None:
    with Store.open(ws) as store:
        store.update_run(run_id, parent_id=nightly_id)
        store.record_event(nightly_id, "decision", node="nightly", name=what,
                           data={"pattern_id": pattern["id"], "run_id": run_id, "goal": pattern["goal"]})


def _reason(store: Store, run_id: int) -> str:
    """The deploy decision's reason, or the verdict's, from the run's trace."""
    for event in reversed(store.events(run_id, kinds=["decision"])):
        if event["node"] in ("deploy", "evaluate"):
            data = event.get("data") or {}
            return f"{event['name']}: {data.get('reason', '')}".strip(": ")
    return ""


def _gain(version: dict[str, Any] | None) -> float | None:
    metrics = (version or {}).get("metrics") or {}
    if metrics.get("tuned_metric") is None or metrics.get("base_metric") is None:
        return None
    return round(metrics["tuned_metric"] - metrics["base_metric"], 4)


def _dry_run(outcome: NightlyOutcome, todo: list[dict[str, Any]], budget: float, started: float) -> NightlyOutcome:
    ws = Workspace.from_env()
    with Store.open(ws) as store, tempfile.TemporaryDirectory() as tmp:
        for pattern in todo:
            data = _pattern_examples(store, pattern, Path(tmp) / "examples.jsonl")
            item = PatternRun(pattern["id"], pattern["goal"], "too_small" if data.too_small else "would_run",
                              data={**data.to_dict(), "path": None}, reason=data.too_small or "")
            outcome.patterns.append(item)
    runnable = [p for p in outcome.patterns if p.action == "would_run"]
    outcome.status, outcome.production_after = "dry_run", outcome.production_before
    outcome.message = (f"Dry run: {len(runnable)} of {len(todo)} new patterns would be trained within "
                       f"{budget:g} minutes; nothing was changed.")
    outcome.wall_seconds = round(time.time() - started, 1)
    return outcome


def _finish(ws: Workspace, outcome: NightlyOutcome, started: float) -> NightlyOutcome:
    from evals.report import write_nightly_report

    nightly_id = outcome.nightly_id
    assert nightly_id is not None
    with Store.open(ws) as store:
        after = store.production_model()
        outcome.production_after = after["name"] if after else None
        outcome.wall_seconds = round(time.time() - started, 1)
        promoted = [p for p in outcome.patterns if p.promoted]
        ran = [p for p in outcome.patterns if p.action in ("ran", "resumed")]
        outcome.message = (f"Nightly {nightly_id}: {len(ran)} pattern runs, {len(promoted)} promoted; production "
                           f"{outcome.production_before or 'none'} → {outcome.production_after or 'none'}.")
        report = write_nightly_report(ws.run_dir(nightly_id) / "report.html", outcome.to_dict())
        outcome.report = str(report)
        store.record_event(nightly_id, "metric", node="nightly", name="result", data=outcome.to_dict())
        store.release_run(nightly_id, "finished", model=outcome.production_after,
                          verdict="promoted" if promoted else "kept", wall_seconds=outcome.wall_seconds)
    return outcome


def _nothing_message(mining: dict[str, Any]) -> str:
    rows = mining.get("rows_read", mining.get("rows", 0))
    return (f"Nothing to do: {rows} logged requests, no new pattern over its threshold. "
            "`ingrain patterns` shows what was found.")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:60]
