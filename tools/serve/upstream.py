"""The proxy half of the endpoint: relay chat completions to an upstream OpenAI-compatible API, log each one.

Bodies go up unchanged and answers come back unchanged (a stream chunk by chunk as it arrives); the only
edit is asking a stream for its usage figures so the log has the upstream's own token counts, and hiding
that usage chunk again from a client that did not ask for it. The client's Authorization header never
leaves this process: the upstream gets its own key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from fastapi.responses import Response, StreamingResponse

from tools.serve.schemas import SSE_HEADERS, ApiError
from tools.serve.usage import split_chat

log = logging.getLogger("ingrain.serve")

MODELS_CACHE_SECONDS = 60.0
MODELS_RETRY_SECONDS = 10.0
"""After a failed /models fetch, list local models only for this long before asking again."""
UNAVAILABLE = "upstream_unavailable"


def lenient_chat(body: dict[str, Any]) -> list[dict[str, str]]:
    """The messages of any chat body as role/content text, for the log; never rejects what the upstream may
    accept (tool calls, image parts, roles this endpoint does not serve itself)."""
    chat = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        role = message.get("role") or "user"
        chat.append({"role": "system" if role == "developer" else str(role),
                     "content": content if isinstance(content, str) else ""})
    return chat


@dataclass
class Relayed:
    """What one upstream call produced: the numbers and text its usage row needs."""

    id: str
    started: float
    model: str | None
    chat: list[dict[str, str]]
    key_id: int | None
    stream: bool = False
    source: str = "upstream"
    """upstream: a client's request relayed | shadow: a routed request's check sample."""
    route: str | None = None
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token: float | None = None
    status: str = "ok"
    """ok | error | client_disconnected (the answer in `parts` is then partial)."""
    error: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def take_completion(self, data: dict[str, Any]) -> None:
        """Read a non-stream `chat.completion` body."""
        self.id = data.get("id") or self.id
        choice = (data.get("choices") or [{}])[0]
        self.parts = [(choice.get("message") or {}).get("content") or ""]
        self.finish_reason = choice.get("finish_reason")
        self._take_usage(data.get("usage"))

    def take_chunk(self, data: dict[str, Any]) -> None:
        """Read one `chat.completion.chunk` of a stream."""
        self.id = data.get("id") or self.id
        for choice in data.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                self.first_token = self.first_token or time.time()
                self.parts.append(piece)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self._take_usage(data.get("usage"))

    def _take_usage(self, figures: Any) -> None:
        if isinstance(figures, dict):
            self.prompt_tokens = figures.get("prompt_tokens", self.prompt_tokens)
            self.completion_tokens = figures.get("completion_tokens", self.completion_tokens)

    def fail(self, status: str, error: str) -> None:
        self.status, self.error = status, error[:2000]

    def row(self) -> dict[str, Any]:
        system, messages = split_chat(self.chat)
        return {
            "id": self.id, "ts": self.started, "model": self.model, "key_id": self.key_id, "status": self.status,
            "stream": self.stream, "system_prompt": system, "messages": messages,
            "response": self.text if self.parts else None, "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "latency_s": round(time.time() - self.started, 4),
            "ttft_s": round(self.first_token - self.started, 4) if self.first_token else None,
            "error": self.error, "source": self.source, "partial": self.status == "client_disconnected",
            "route": self.route,
        }


class Upstream:
    """A pooled HTTP client to one upstream API, and the relay that logs every call through `log_row`."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float,
                 log_row: Callable[[dict[str, Any]], None]) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key, self.timeout_s, self.log_row = api_key, timeout_s, log_row
        self._client: httpx.AsyncClient | None = None
        self._models: list[str] = []
        self._models_until = 0.0

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20), headers=self._headers())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "start() first (the app lifespan does)"
        return self._client

    async def model_names(self) -> list[str]:
        """The upstream's model ids from its /models, cached; empty while it cannot be reached."""
        if time.monotonic() < self._models_until:
            return self._models
        try:
            response = await self.client.get(f"{self.base_url}/models", timeout=min(self.timeout_s, 5.0))
            response.raise_for_status()
            self._models = [m["id"] for m in response.json()["data"] if isinstance(m.get("id"), str)]
            self._models_until = time.monotonic() + MODELS_CACHE_SECONDS
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("could not list the upstream's models (%s); listing local models only", _describe(exc))
            self._models, self._models_until = [], time.monotonic() + MODELS_RETRY_SECONDS
        return self._models

    async def relay(self, raw: bytes, body: dict[str, Any], *, key_id: int | None, started: float) -> Response:
        """Answer a client's chat request from the upstream: its body, status and stream, unchanged."""
        record = Relayed(id=f"chatcmpl-{uuid.uuid4().hex[:24]}", started=started, model=body.get("model"),
                         chat=lenient_chat(body), key_id=key_id, stream=bool(body.get("stream")))
        if not record.stream:
            try:
                response = await self._post(raw, record)
                return self._answer(response, record)
            except asyncio.CancelledError:
                record.status = "client_disconnected"
                raise
            finally:
                self.log_row(record.row())
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if not wants_usage:
            raw = json.dumps({**body, "stream_options": {**(body.get("stream_options") or {}),
                                                          "include_usage": True}}).encode()
        streaming = False
        try:
            response = await self._post(raw, record, stream=True)
            if response.status_code < 400 and _is_event_stream(response):
                streaming = True  # from here the stream's own `finally` writes the row
                return StreamingResponse(self._events(response, record, wants_usage),
                                         status_code=response.status_code, media_type="text/event-stream",
                                         headers=SSE_HEADERS)
            await response.aread()
            await response.aclose()
            return self._answer(response, record)
        except asyncio.CancelledError:
            record.status = "client_disconnected"
            raise
        finally:
            if not streaming:
                self.log_row(record.row())

    async def complete(self, body: dict[str, Any], *, key_id: int | None, route: str) -> str | None:
        """A shadow sample: the same request answered upstream, not streamed; its text, None if it failed."""
        body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        shadow_id = f"shadow-{uuid.uuid4().hex[:24]}"
        record = Relayed(id=shadow_id, started=time.time(), model=body.get("model"), chat=lenient_chat(body),
                         key_id=key_id, source="shadow", route=route)
        try:
            self._answer(await self._post(json.dumps(body).encode(), record), record)
        except ApiError:
            return None
        finally:
            record.id = shadow_id  # its own id: the upstream's belongs to no client
            self.log_row(record.row())
        return record.text if record.status == "ok" else None

    async def _post(self, raw: bytes, record: Relayed, *, stream: bool = False) -> httpx.Response:
        request = self.client.build_request("POST", f"{self.base_url}/chat/completions", content=raw)
        try:
            return await self.client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            message = (f"The upstream {self.base_url} did not answer within {self.timeout_s:g} s "
                       f"({_describe(exc)}). It may be overloaded: try again later.")
        except httpx.HTTPError as exc:
            message = (f"The upstream {self.base_url} could not be reached ({_describe(exc)}). Check that it "
                       "is up and that --upstream is right.")
        record.fail("error", message)
        raise ApiError(502, message, type="server_error", code=UNAVAILABLE)

    def _answer(self, response: httpx.Response, record: Relayed) -> Response:
        """A complete upstream answer to pass on as it is, after reading what the log needs from it."""
        if response.status_code >= 400:
            record.fail("error", f"upstream {response.status_code}: {response.text[:1000]}")
        else:
            try:
                record.take_completion(response.json())
            except (ValueError, AttributeError, IndexError, TypeError):
                message = (f"The upstream {self.base_url} answered {response.status_code} with a body that is "
                           f"not a chat completion ({response.headers.get('content-type', 'no content type')}"
                           f": {response.text[:80]!r}).")
                record.fail("error", message)
                raise ApiError(502, message, type="server_error", code="upstream_bad_response") from None
        return Response(response.content, status_code=response.status_code,
                        media_type=response.headers.get("content-type", "application/json"))

    async def _events(self, response: httpx.Response, record: Relayed, wants_usage: bool) -> AsyncIterator[str]:
        """Relay server-sent events one whole event at a time, noting text, finish and usage on the way."""
        lines: list[str] = []
        finished = False
        try:
            async for line in response.aiter_lines():
                if line:
                    lines.append(line)
                    continue
                if not lines:
                    continue
                event, lines = lines, []
                if _read_event(event, record) == "usage" and not wants_usage:
                    continue
                yield "\n".join(event) + "\n\n"
            if lines:
                _read_event(lines, record)
                yield "\n".join(lines) + "\n\n"
            finished = True
        except httpx.HTTPError as exc:
            finished = True
            record.fail("error", f"The upstream stream broke off: {_describe(exc)}")
            yield ApiError(502, record.error or "", type="server_error", code=UNAVAILABLE).event()
        finally:
            if not finished:  # cancelled or closed while relaying: the client went away
                record.status = "client_disconnected"
            self.log_row(record.row())
            with anyio.CancelScope(shield=True):
                await response.aclose()


def _read_event(lines: list[str], record: Relayed) -> str:
    """Note what one event carries; "usage" for the usage-only chunk, "done" for [DONE], else "chunk"."""
    payload = "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
    if payload == "[DONE]":
        return "done"
    try:
        data = json.loads(payload)
    except ValueError:
        return "chunk"
    if not isinstance(data, dict):
        return "chunk"
    if "error" in data:
        record.fail("error", json.dumps(data["error"])[:1000])
    record.take_chunk(data)
    return "usage" if data.get("usage") and not data.get("choices") else "chunk"


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
