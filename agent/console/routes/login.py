"""Log in with an API key (the endpoint's keys), log out."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agent.console.app import base_path, posted, render
from agent.console.auth import ConsoleAuth

router = APIRouter()


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after logging in: only a path inside this console, never another site."""
    base = base_path(request)
    if not target or not target.startswith(base + "/") or target.startswith("//") or "\\" in target:
        return base + "/"
    return target


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html", next=safe_next(request, request.query_params.get("next")),
                  expired=request.query_params.get("expired") == "1")


@router.post("/login")
async def login(request: Request) -> Response:
    auth: ConsoleAuth = request.app.state.auth
    form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))
    auth.check_csrf(request, None, form)
    target = safe_next(request, form.get("next"))
    key_id = await run_in_threadpool(auth.check_key, form.get("key", ""))
    if key_id is None:
        return render(request, "login.html", 401, next=target, error="That key is not valid (or was revoked). "
                      "Create one with `ingrain keys create --name NAME`.")
    name = await run_in_threadpool(auth.key_name, key_id)
    # A new session id on login, so a session id planted before it is worth nothing after it.
    request.state.new_cookie = auth.encode(auth.new_session(key_id, name))
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await posted(request)
    auth: ConsoleAuth = request.app.state.auth
    request.state.new_cookie = auth.encode(auth.new_session())
    return RedirectResponse(f"{base_path(request)}/login", status_code=303)
