"""Models: the registry with lineage and metrics; promote and roll back, each after a confirmation page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agent.console.app import Reader, base_path, posted, render
from agent.console.worker import with_retry
from memory import Store

router = APIRouter()


def _models() -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
    """Versions newest first, the production one, and the one a rollback would bring back."""
    with Store.open() as store:
        rows = store.models()
        production = store.production_model()
    previous = max((r for r in rows if r["status"] == "archived" and r.get("promoted")),
                   key=lambda r: r["promoted"], default=None)
    return rows, production, previous


@router.get("/models")
def models_page(request: Request, who: Reader) -> Response:
    rows, production, previous = _models()
    note = None
    if request.query_params.get("promoted"):
        note = f"{request.query_params['promoted']} is now in production."
    elif request.query_params.get("rolledback"):
        note = f"Rolled back: {request.query_params['rolledback']} is in production again."
    return render(request, "models.html", rows=rows, production=production, previous=previous, note=note)


@router.get("/models/{name}/promote")
def promote_page(request: Request, who: Reader, name: str) -> Response:
    with Store.open() as store:
        target, production = store.model(name), store.production_model()
    return render(request, "confirm.html", action="promote", target=target, production=production)


@router.post("/models/{name}/promote")
async def promote(request: Request, name: str) -> Response:
    await posted(request)

    def write() -> dict[str, Any]:
        with Store.open() as store:  # the same store verb as `ingrain models promote`
            return store.promote(name)

    row = await run_in_threadpool(with_retry, write)
    return RedirectResponse(f"{base_path(request)}/models?promoted={quote(row['name'])}", status_code=303)


@router.get("/models/rollback")
def rollback_page(request: Request, who: Reader) -> Response:
    _, production, previous = _models()
    return render(request, "confirm.html", action="rollback", target=previous, production=production)


@router.post("/models/rollback")
async def rollback(request: Request) -> Response:
    await posted(request)

    def write() -> dict[str, Any]:
        with Store.open() as store:  # the same store verb as `ingrain models rollback`
            return store.rollback()

    row = await run_in_threadpool(with_retry, write)
    return RedirectResponse(f"{base_path(request)}/models?rolledback={quote(row['name'])}", status_code=303)
