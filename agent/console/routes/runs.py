"""Runs: the list, one run (graph, trace, report parts) with its live fragment, its report, resume, new goal."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agent.console.app import Reader, base_path, posted, render
from agent.console.views import (
    graph_view,
    live_wall,
    report_sections,
    run_state,
    runs_rows,
    trace_tree,
)
from agent.errors import AgentError
from memory import Store, StoreError, Workspace

router = APIRouter()
POLICIES = ("interactive", "auto", "nightly")


def change_key(*parts: Any) -> str:
    """A short digest of what a live fragment shows: the page sends it back and gets 204 while it is the same."""
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _tick(row: dict[str, Any]) -> Any:
    # A running run's wall clock moves; refresh it every 5 s rather than never.
    return int(row["wall"] // 5) if row["status"] == "running" else row["wall"]


@router.get("/")
def runs_page(request: Request, who: Reader) -> Response:
    with Store.open() as store:
        rows = runs_rows(store)
    return render(request, "runs.html", rows=rows, key=_runs_key(rows))


@router.get("/fragments/runs")
def runs_fragment(request: Request, who: Reader, key: str = "") -> Response:
    with Store.open() as store:
        rows = runs_rows(store)
    fresh = _runs_key(rows)
    if fresh == key:
        return Response(status_code=204)
    return render(request, "_runs_table.html", rows=rows, key=fresh)


def _runs_key(rows: list[dict[str, Any]]) -> str:
    return change_key([(r["id"], r["status"], r["gate"], r["node"], r["model"], r["verdict"], _tick(r))
                       for r in rows])


def run_context(request: Request, run_id: str) -> dict[str, Any]:
    """Everything the run page and its live fragment show."""
    with Store.open() as store:
        run = store.run(run_id)  # a run that does not exist: StoreError, the 404 page
        events = store.events(run["id"])
    state = run_state(run["id"])
    run = {**run, "wall": live_wall(run)}
    job = request.app.state.worker.job(run["id"])
    key = change_key(run["status"], run["gate"], events[-1]["id"] if events else None, _tick(run),
                     job and (job.action, job.finished, job.error))
    return {"run": run, "events": events, "state": state, "graph": graph_view(run, events),
            "tree": trace_tree(events), "job": job, "key": key, "reload": state.checkpoint or ""}


@router.get("/runs/{run_id}")
def run_page(request: Request, who: Reader, run_id: str) -> Response:
    context = run_context(request, run_id)
    sections = report_sections(context["run"]["id"], context["state"], context["events"])
    has_report = (Workspace.from_env().run_dir(context["run"]["id"]) / "report.html").exists()
    return render(request, "run.html", sections=sections, has_report=has_report, **context)


@router.get("/runs/{run_id}/live")
def run_live(request: Request, who: Reader, run_id: str, key: str = "") -> Response:
    context = run_context(request, run_id)
    if context["key"] == key:
        return Response(status_code=204)
    return render(request, "_run_live.html", **context)


@router.get("/runs/{run_id}/report")
def run_report(request: Request, who: Reader, run_id: str) -> Response:
    with Store.open() as store:
        run = store.run(run_id)
    path = Workspace.from_env().run_dir(run["id"]) / "report.html"
    if not path.exists():
        raise StoreError(f"No report for run {run['id']} yet: reports are written when a run reaches reflect.")
    return FileResponse(path, media_type="text/html")


@router.post("/runs/{run_id}/resume")
async def run_resume(request: Request, run_id: str) -> Response:
    who, _ = await posted(request)

    def resume() -> int:
        with Store.open() as store:
            run = store.run(run_id)
        request.app.state.worker.resume(run["id"], by=f"console:{who.name}")
        return int(run["id"])

    return RedirectResponse(f"{base_path(request)}/runs/{await run_in_threadpool(resume)}", status_code=303)


def _goal_form(values: dict[str, str]) -> dict[str, str]:
    return {k: values.get(k, "") for k in ("goal", "data", "base", "policy", "budget")}


@router.get("/new")
def new_goal_page(request: Request, who: Reader) -> Response:
    return render(request, "new.html", form=_goal_form(dict(request.query_params)), policies=POLICIES)


@router.post("/new")
async def new_goal(request: Request) -> Response:
    who, form = await posted(request)
    values = _goal_form(form)
    try:
        budget = float(values["budget"]) if values["budget"].strip() else None
        if budget is not None and budget <= 0:
            raise ValueError
    except ValueError:
        return render(request, "new.html", 400, form=values, policies=POLICIES,
                      error=f"Budget {values['budget']!r} is not a number of minutes above zero.")
    if values["policy"] and values["policy"] not in POLICIES:
        return render(request, "new.html", 400, form=values, policies=POLICIES,
                      error=f"Unknown policy {values['policy']!r}: use interactive, auto or nightly.")
    data = [line.strip() for line in values["data"].splitlines() if line.strip()]
    try:
        run_id = await run_in_threadpool(
            request.app.state.worker.start, values["goal"], by=f"console:{who.name}",
            policy=values["policy"] or None, data_paths=data, base=values["base"].strip() or None,
            budget_minutes=budget)
    except AgentError as exc:  # the goal text stays in the box
        return render(request, "new.html", 400, form=values, policies=POLICIES, error=str(exc))
    return RedirectResponse(f"{base_path(request)}/runs/{run_id}", status_code=303)
