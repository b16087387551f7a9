"""Run the OpenAI-compatible endpoint: bind checks, model loading, uvicorn with graceful shutdown."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from memory import keys
from memory.store import Store
from memory.workspace import Workspace
from tools.errors import ToolError
from tools.serve.config import ServeConfig

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("ingrain.serve")


def check_bind(config: ServeConfig, store: Store) -> str | None:
    """Refuse to expose a keyless server beyond loopback; return a warning for a keyless loopback one."""
    if keys.live_key_hashes(store):
        return None
    if not config.loopback:
        raise ToolError(f"Refusing to listen on {config.host}: no API key exists, so anyone who can reach it "
                        "could use it. Create one with `ingrain keys create --name NAME`, or serve on "
                        "--host 127.0.0.1.")
    return (f"No API key exists: any program on this machine can call http://{config.host}:{config.port}/v1. "
            "`ingrain keys create --name NAME` turns key checks on.")


def build_server(config: ServeConfig, workspace: Workspace | None = None,
                 log_level: str = "info") -> uvicorn.Server:
    """Check the bind address, load the model, and return a uvicorn server ready to `run()`."""
    import uvicorn

    from tools.serve.app import create_app
    from tools.serve.slot import ModelSlot

    ws = (workspace or Workspace.from_env()).ensure()
    slot = ModelSlot(ws.db_path, config.model, check_seconds=config.swap_check_seconds,
                     options=config.runner_options)
    warning = check_bind(config, slot.store)
    if warning:
        log.warning(warning)
    started = time.time()
    loaded = slot.load_initial()
    log.info("serving %s (%s, %s, context %d) loaded in %.1fs", loaded.name, loaded.kind, loaded.backend,
             loaded.context_length, time.time() - started)
    app = create_app(config, ws.db_path, slot)
    # SIGTERM/SIGINT make uvicorn stop accepting, finish open requests, then run the lifespan shutdown
    # that drains the generation queue and flushes the usage log.
    return uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level,
                                         lifespan="on", timeout_graceful_shutdown=60))


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (useful with port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


@contextmanager
def running_server(config: ServeConfig, workspace: Workspace | None = None,
                   log_level: str = "warning", start_timeout: float = 120.0) -> Iterator[uvicorn.Server]:
    """Serve in a background thread for the length of the block, then shut down gracefully."""
    server = build_server(config, workspace, log_level=log_level)
    thread = threading.Thread(target=server.run, name="ingrain-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ToolError(f"The server did not start on {config.host}:{config.port} "
                            "(is the port taken? try --port 0 or another port).")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(90)


def wait_until_healthy(base_url: str, *, timeout_s: float = 300.0, process: Any = None) -> dict[str, Any]:
    """Poll `base_url`/healthz until the endpoint answers; its health document. For scripts that start
    `ingrain serve` as a child: `process` (a Popen) that exits first is reported with its last stderr."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = process.stderr.read()[-2000:] if process.stderr else ""
            raise ToolError(f"`ingrain serve` exited with code {process.returncode} before it was healthy. {tail}")
        try:
            response = httpx.get(f"{base_url.rstrip('/')}/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ToolError(f"{base_url} did not answer /healthz within {timeout_s:.0f} s; see the server's log.")
