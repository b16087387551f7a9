"""The gate page: the question, what it is about (plan, sweep table, verdict), and its answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agent.console.app import Reader, base_path, posted, render
from agent.console.views import report_sections, run_state
from agent.console.worker import latest_pause
from memory import Store

router = APIRouter()
SECTION_OF_GATE = {"plan": "plan", "winner": "sweep", "deploy": "evaluation"}
"""Which part of the report a gate's question is about."""


def gate_context(run_id: str, form: dict[str, str]) -> dict[str, Any]:
    with Store.open() as store:
        run = store.run(run_id)
        events = store.events(run["id"])
        pause = latest_pause(store, run["id"])
    state = run_state(run["id"])
    payload = state.interrupt if run["status"] == "paused" else None
    answers = [e for e in events if e["kind"] == "answer"]
    trials = ((payload or {}).get("sweep") or {}).get("trials", [])
    section = ""
    if payload:
        section = report_sections(run["id"], state, events).get(SECTION_OF_GATE.get(payload["gate"], ""), "")
    return {"run": run, "payload": payload, "pause": pause, "trials": trials, "section": section,
            "last_answer": answers[-1] if answers else None,
            "winner": ((payload or {}).get("sweep") or {}).get("winner"),
            "form": {"reason": form.get("reason", ""), "choice": form.get("choice", "")}}


@router.get("/runs/{run_id}/gate")
def gate_page(request: Request, who: Reader, run_id: str) -> Response:
    context = gate_context(run_id, dict(request.query_params))
    return render(request, "gate.html", job=request.app.state.worker.job(context["run"]["id"]), **context)


@router.post("/runs/{run_id}/gate")
async def answer_gate(request: Request, run_id: str) -> Response:
    who, form = await posted(request)
    action = form.get("action", "")
    context = await run_in_threadpool(gate_context, run_id, form)
    run = context["run"]
    error = None
    if action in ("reject", "stop") and not form.get("reason", "").strip():
        error = "Say why in the reason box: the planner reads it when it plans again."
    choice = form.get("choice") or None
    if action == "approve" and choice and context["trials"] and choice not in [t["name"] for t in context["trials"]]:
        error = f"{choice!r} is not a trial of this sweep."
    if error:  # the reason typed so far stays in the box
        return render(request, "gate.html", 400, error=error, job=None, **context)
    pause = int(form["pause"]) if form.get("pause", "").isdigit() else None
    await run_in_threadpool(request.app.state.worker.answer, run["id"], pause=pause, action=action,
                            by=f"console:{who.name}", choice=choice, reason=form.get("reason", ""))
    return RedirectResponse(f"{base_path(request)}/runs/{run['id']}", status_code=303)


@router.get("/runs/{run_id}/gate/status")
def gate_status(request: Request, who: Reader, run_id: str, pause: str = "", key: str = "",
                ) -> Response:
    """Tells an open gate page when the gate was answered elsewhere (the command line, another browser)."""
    with Store.open() as store:
        run = store.run(run_id)
        current = latest_pause(store, run["id"])
        answers = store.events(run["id"], kinds=["answer"])
    moved = run["status"] != "paused" or str(current or "") != pause
    fresh = f"{run['status']}:{current}:{moved}"
    if fresh == key:
        return Response(status_code=204)
    return render(request, "_gate_status.html", run=run, moved=moved, key=fresh,
                  last_answer=answers[-1] if answers and moved else None)
