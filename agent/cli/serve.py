"""`ingrain serve`, `ingrain keys ...` and `ingrain usage`: the endpoint and its log on the command line."""

from __future__ import annotations

import logging
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.cli.common import JsonOpt, app, emit_json

keys_app = typer.Typer(help="API keys for the endpoint (stored hashed; a key is shown once).",
                       no_args_is_help=True)


def serve(
    model: Annotated[str | None, typer.Option("--model", help="Version name, base name or folder to serve "
                                              "(pinned). Default: the production version, hot-swapped on "
                                              "promote/rollback, or the default base when none.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; non-loopback needs an API key.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    log_content: Annotated[str, typer.Option("--log-content", help="What the usage log keeps of prompts and "
                                             "replies: none | redacted | full.")] = "redacted",
    queue_size: Annotated[int, typer.Option("--queue-size", help="Requests that may wait; more get 429.")]
    = 32,
    backend: Annotated[str, typer.Option("--backend", help="auto (llama.cpp when llama-cpp-python is installed "
                                         "and the model has a GGUF copy) | llamacpp | torch.")] = "auto",
    max_batch: Annotated[int, typer.Option("--max-batch", help="Requests decoded together with llama.cpp.")]
    = 8,
    upstream: Annotated[str | None, typer.Option("--upstream", help="Base URL of an OpenAI-compatible API "
                                                 "(e.g. https://api.openai.com/v1): requests for models not "
                                                 "served here are relayed to it and logged.")] = None,
    upstream_key_env: Annotated[str | None, typer.Option("--upstream-key-env", help="Environment variable "
                                                         "holding the upstream's API key (the client's key "
                                                         "is never forwarded).")] = None,
    route: Annotated[str, typer.Option("--route", help="auto: answer requests whose system prompt has a local "
                                       "route (set by the nightly) with the local model, checking a shadow "
                                       "sample upstream | off: relay every non-local model.")] = "off",
) -> None:
    """Serve the model on an OpenAI-compatible endpoint (POST /v1/chat/completions, GET /v1/models),
    optionally as a logging proxy in front of an upstream API."""
    from tools.serve.config import ServeConfig
    from tools.serve.server import build_server

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    config = ServeConfig(model=model, host=host, port=port, log_content=log_content, queue_size=queue_size,
                         backend=backend, max_batch=max_batch, upstream=upstream,
                         upstream_key_env=upstream_key_env, route=route)
    server = build_server(config)
    from agent.console.app import mount_console

    mount_console(server.config.app, loopback=config.loopback)  # the web console, same keys as the endpoint
    proxy = f", other models relayed to {upstream} (route {route})" if upstream else ""
    Console(stderr=True).print(f"OpenAI-compatible endpoint on http://{host}:{port}/v1{proxy}, web console on "
                               f"http://{host}:{port}/console/; Ctrl-C or SIGTERM stops it after open requests "
                               "finish.", highlight=False)
    server.run()


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")]) -> None:
    """Create an API key and print it once; only its sha256 is stored."""
    from memory import Store
    from memory.keys import create_key

    with Store.open() as store:
        key = create_key(store, name)
    sys.stdout.write(key + "\n")
    Console(stderr=True).print(f"Key {escape(name)!r} created. Store it now: it cannot be shown again. "
                               "Clients send it as `Authorization: Bearer <key>`.", highlight=False)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """The keys there are (name, prefix, created, revoked), never the keys themselves."""
    from memory import Store
    from memory.keys import api_keys

    with Store.open() as store:
        rows = api_keys(store)
    if as_json:
        emit_json({"keys": rows})
        return
    table = Table("id", "name", "prefix", "created", "revoked")
    for row in rows:
        table.add_row(str(row["id"]), escape(row["name"]), row["prefix"] + "…", _when(row["created"]),
                      _when(row["revoked"]) if row["revoked"] else "")
    Console().print(table if rows else "No API keys yet: `ingrain keys create --name NAME`.")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="Key id from `ingrain keys list`.")]) -> None:
    """Revoke a key; a running server refuses it within a second."""
    from memory import Store
    from memory.keys import revoke_key

    with Store.open() as store:
        revoke_key(store, key_id)
    Console(stderr=True).print(f"Key {key_id} revoked.")


def usage(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most recent requests to list.")] = 1000,
    since_hours: Annotated[float | None, typer.Option("--since-hours", help="Only the last N hours.")] = None,
) -> None:
    """The endpoint's usage log: one row per request, newest first, and a summary."""
    from memory import Store
    from memory.usage import usage_rows, usage_summary

    since = time.time() - since_hours * 3600 if since_hours else None
    with Store.open() as store:
        rows, summary = usage_rows(store, limit=limit, since=since), usage_summary(store, since=since)
    if as_json:
        emit_json({"requests": rows, "summary": summary})
        return
    _print_usage(rows, summary)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _print_usage(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    console = Console(highlight=False)
    if not rows:
        console.print("No requests logged yet: start the endpoint with `ingrain serve`.")
        return
    table = Table("time", "model", "status", "finish", "tokens in/out", "latency", "request")
    for row in rows:
        last_user = next((m["content"] for m in reversed(row["messages"] or []) if m["role"] == "user"), "")
        table.add_row(_when(row["ts"]), escape(row["model"] or ""), row["status"], row["finish_reason"] or "",
                      f"{row['prompt_tokens'] or 0}/{row['completion_tokens'] or 0}",
                      f"{row['latency_s']:.2f}s" if row["latency_s"] is not None else "",
                      escape(last_user[:60]))
    console.print(table)
    p50, p95 = summary["latency_p50_s"], summary["latency_p95_s"]
    console.print(f"{summary['requests']} requests {summary['by_status']} · tokens "
                  f"{summary['prompt_tokens']} in / {summary['completion_tokens']} out · latency p50 "
                  f"{p50 if p50 is not None else '-'}s p95 {p95 if p95 is not None else '-'}s · "
                  f"feedback {summary['feedback']['count']}")


app.command("serve")(serve)
app.add_typer(keys_app, name="keys")
app.command("usage")(usage)
