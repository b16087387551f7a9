"""The console's FastAPI app: sessions and security headers, error pages, static files, and the page routes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates

from agent.console.auth import COOKIE, ConsoleAuth, CsrfRefused, LoginRequired, Viewer
from agent.console.worker import Conflict, Worker
from agent.errors import AgentError
from memory import StoreError

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    # Scripts only from our own static folder: a model output that smuggled markup in still could not run.
    # Inline styles stay allowed for the HTML reports the console serves as they are.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    from agent.console import filters

    env.filters.update(filters.FILTERS)
    return Jinja2Templates(env=env)


TEMPLATES = _templates()


def base_path(request: Request) -> str:
    """Where the console is mounted (`/console`), so links work under `ingrain console` and `ingrain serve`."""
    return request.scope.get("root_path", "").rstrip("/")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    auth: ConsoleAuth = request.app.state.auth
    return TEMPLATES.TemplateResponse(request, template, {
        "base": base_path(request), "csrf": auth.csrf_token(request.state.session),
        "viewer": getattr(request.state, "viewer", None), "open_access": auth.open_access(), **context},
        status_code=status_code)


def viewer(request: Request) -> Viewer:
    """The page's reader, or LoginRequired (a FastAPI dependency)."""
    request.state.viewer = request.app.state.auth.viewer(request)
    return request.state.viewer


Reader = Annotated[Viewer, Depends(viewer)]
"""A page parameter that requires a logged-in reader."""


async def posted(request: Request) -> tuple[Viewer, dict[str, str]]:
    """A state-changing form: who sent it and its fields, after the login and CSRF checks."""
    body = (await request.body()).decode("utf-8", errors="replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    request.state.form = form  # kept so a login in between can give the form back
    who = viewer(request)
    request.app.state.auth.check_csrf(request, who, form)
    return who, form


def create_console(*, loopback: bool = True, session_seconds: float = 12 * 3600) -> FastAPI:
    """The console app; mount it at `/console` (both `ingrain console` and `ingrain serve` do)."""
    from agent.console.routes import gates, models, runs, usage
    from agent.console.routes import login as login_routes

    app = FastAPI(title="ingrain console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.auth = ConsoleAuth(loopback=loopback, session_seconds=session_seconds)
    app.state.worker = Worker()

    @app.middleware("http")
    async def sessions(request: Request, call_next: Any) -> Response:
        auth: ConsoleAuth = request.app.state.auth
        session, expired = auth.decode(request.cookies.get(COOKIE))
        request.state.session_expired = expired
        request.state.new_cookie = None
        if session is None:  # every visitor gets a session, anonymous until a key logs it in (CSRF needs one)
            session = auth.new_session()
            request.state.new_cookie = auth.encode(session)
        request.state.session = session
        response: Response = await call_next(request)
        if request.state.new_cookie:
            # No max-age: the server enforces the expiry, so a stale cookie still arrives and the login page
            # can say the session expired instead of acting as if there never was one.
            response.set_cookie(COOKIE, request.state.new_cookie, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path=base_path(request) or "/")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("authorization") or request.headers.get("x-console-fragment"):
            return PlainTextResponse("Log in again: the session ended or the key is not valid.", status_code=401)
        target = request.url.path
        if request.method == "POST":  # give the form back after the login, minus its stale token
            kept = {k: v for k, v in getattr(request.state, "form", {}).items() if k != "csrf"}
            target += "?" + urlencode(kept) if kept else ""
        elif request.url.query:
            target += "?" + request.url.query
        query = urlencode({"next": target, **({"expired": "1"} if exc.expired else {})})
        return RedirectResponse(f"{base_path(request)}/login?{query}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _: CsrfRefused) -> Response:
        return render(request, "error.html", 403, title="Form refused",
                      message="This form came without its security token (or with an old one), so nothing was "
                              "changed. Go back, reload the page and send it again.")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> Response:
        missing = str(exc).startswith("No ")  # "No run 7", "No model version .." and the like
        return render(request, "error.html", 404 if missing else 409,
                      title="Not found" if missing else "The store said no", message=str(exc))

    @app.exception_handler(AgentError)
    async def agent_error(request: Request, exc: AgentError) -> Response:
        return render(request, "error.html", 409, title="Already answered" if isinstance(exc, Conflict)
                      else "That did not work", message=str(exc), back=request.headers.get("referer"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return render(request, "error.html", 404, title="Not found",
                          message=f"There is no page at {request.url.path}.")
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (runs, gates, models, usage, login_routes):
        app.include_router(module.router)
    return app


def mount_console(parent: FastAPI, *, loopback: bool) -> FastAPI:
    """Serve the console under `/console` of `parent` (the endpoint's app); returns the console app."""
    console = create_console(loopback=loopback)
    parent.mount("/console", console)
    return console


def standalone(*, loopback: bool, session_seconds: float = 12 * 3600) -> FastAPI:
    """`ingrain console`'s app: the console at `/console`, and `/` sending people there."""
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount("/console", create_console(loopback=loopback, session_seconds=session_seconds))

    @root.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    return root
