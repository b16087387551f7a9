"""`ingrain console`: the web console (runs, live trace, gates, models, usage, lessons) on a local port."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli.common import app, err
from agent.errors import AgentError


@app.command()
def console(
    host: Annotated[str, typer.Option("--host", help="Address to bind. Anything but loopback needs an API key "
                                      "(`ingrain keys create`), and the console then always asks for one.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one.")] = 8790,
) -> None:
    """Web console over the same store as the CLI: runs, live trace, gates, models, usage, patterns, lessons."""
    import logging

    import uvicorn

    from agent.console.app import standalone
    from memory import Store
    from memory.keys import live_key_hashes
    from tools.serve.config import is_loopback

    loopback = is_loopback(host)
    with Store.open() as store:
        has_keys = bool(live_key_hashes(store))
    if not loopback and not has_keys:
        raise AgentError(f"Refusing to listen on {host}: no API key exists, so anyone who can reach it could drive "
                         "your runs. Create one with `ingrain keys create --name NAME`, or keep --host 127.0.0.1.")
    import agent.runner  # noqa: F401  # load the graph now, not on the first page view

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    server = uvicorn.Server(uvicorn.Config(standalone(loopback=loopback), host=host, port=port, log_level="warning"))
    login = "log in with an API key" if has_keys else "no key exists, so it is open to this machine only"
    err.print(f"ingrain console on http://{host}:{port}/console/ ({login}); Ctrl-C stops it.", highlight=False)
    server.run()
