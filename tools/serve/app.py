"""The FastAPI app: OpenAI-compatible chat completions, models, feedback and health, with key checks."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memory import keys, usage
from tools.serve.config import ServeConfig
from tools.serve.engine import Engine, GenerationJob, GenerationResult, QueueFull, SamplingParams
from tools.serve.schemas import (
    DONE_EVENT,
    MODEL_ALIAS,
    ApiError,
    ChatRequest,
    FeedbackRequest,
    chunk_event,
    completion_body,
    parse_body,
    usage_block,
)
from tools.serve.slot import LoadedModel, ModelSlot
from tools.serve.usage import UsageWriter

log = logging.getLogger("ingrain.serve")

KEY_CACHE_SECONDS = 1.0
STATUS_BY_HTTP = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 429: "queue_full"}


@dataclass
class ServeState:
    """What the routes share: the model slot, the generation worker, the usage writer, the key cache."""

    config: ServeConfig
    slot: ModelSlot
    engine: Engine
    writer: UsageWriter
    recent_ids: deque[str] = field(default_factory=lambda: deque(maxlen=10_000))
    _keys: dict[str, int] = field(default_factory=dict)
    _keys_read: float = -1e9

    def key_hashes(self) -> dict[str, int]:
        # Re-read at most once a second so `ingrain keys create` in another shell takes effect quickly.
        if time.monotonic() - self._keys_read >= KEY_CACHE_SECONDS:
            self._keys = keys.live_key_hashes(self.slot.store)
            self._keys_read = time.monotonic()
        return self._keys

    def authenticate(self, request: Request) -> int | None:
        """The caller's key id; None when no key exists yet (the server is then loopback-only)."""
        hashes = self.key_hashes()
        if not hashes:
            if self.config.loopback:
                return None
            # Every key was revoked after start: a server reachable from outside must not fall open.
            raise ApiError(401, "No API key is valid any more. Create one with `ingrain keys create --name NAME`.",
                           type="authentication_error", code="invalid_api_key")
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Missing API key: send `Authorization: Bearer <key>` "
                                "(create one with `ingrain keys create --name NAME`).",
                           type="authentication_error", code="missing_api_key")
        key_id = hashes.get(keys.hash_key(token.strip()))
        if key_id is None:
            raise ApiError(401, "Incorrect API key. Create a new one with `ingrain keys create --name NAME`.",
                           type="authentication_error", code="invalid_api_key")
        return key_id

    def retry_after(self) -> int:
        return max(1, math.ceil(self.engine.avg_job_seconds * (self.engine.waiting + 1)))


def _row(response_id: str, *, started: float, key_id: int | None, status: str, stream: bool = False,
         model: str | None = None, chat: list[dict[str, str]] | None = None, params: dict | None = None,
         result: GenerationResult | None = None, error: str | None = None,
         prompt_tokens: int | None = None) -> dict[str, Any]:
    chat = chat or []
    system = "\n\n".join(m["content"] for m in chat if m["role"] == "system") or None
    return {
        "id": response_id, "ts": started, "model": model, "key_id": key_id, "status": status,
        "stream": stream, "system_prompt": system,
        "messages": [m for m in chat if m["role"] != "system"] or None,
        "response": result.text if result else None,
        "finish_reason": result.finish_reason if result else None,
        "prompt_tokens": result.prompt_tokens if result else prompt_tokens,
        "completion_tokens": result.completion_tokens if result else 0,
        "latency_s": round((result.finished if result and result.finished else time.time()) - started, 4),
        "ttft_s": round(result.ttft_s, 4) if result and result.ttft_s is not None else None,
        "params": params, "error": error or (result.error if result else None),
    }


def _tokenize(loaded: LoadedModel, chat: list[dict[str, str]]) -> list[int]:
    try:
        encoded = loaded.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True,
                                                       return_dict=True)
    except Exception as exc:
        raise ApiError(400, f"These messages do not fit the model's chat template: {exc}",
                       code="invalid_messages") from None
    return list(encoded["input_ids"])


def _check_model(req: ChatRequest, loaded: LoadedModel) -> None:
    if req.model not in (loaded.name, MODEL_ALIAS):
        raise ApiError(404, f"The model {req.model!r} is not served here. Available: {loaded.name!r} "
                            f"(or {MODEL_ALIAS!r} for whatever version is in production).",
                       code="model_not_found", param="model")


def _params(req: ChatRequest, loaded: LoadedModel, prompt_len: int, config: ServeConfig) -> SamplingParams:
    if req.n not in (None, 1):
        raise ApiError(400, f"n={req.n} is not supported: this endpoint returns one choice; send n=1 "
                            "and repeat the request for more samples.", code="unsupported_value", param="n")
    if len(req.stops()) > 4:
        raise ApiError(400, "At most 4 stop sequences are allowed.", code="invalid_value", param="stop")
    room = loaded.context_length - prompt_len
    if room < 1:
        raise ApiError(400, f"This model's maximum context length is {loaded.context_length} tokens, but the "
                            f"messages take {prompt_len} tokens. Shorten the messages or the system prompt.",
                       code="context_length_exceeded", param="messages")
    wanted = req.max_completion_tokens or req.max_tokens or config.default_max_tokens
    temperature = config.default_temperature if req.temperature is None else req.temperature
    return SamplingParams(max_tokens=min(wanted, room), temperature=temperature,
                          top_p=1.0 if req.top_p is None else req.top_p, stop=req.stops(), seed=req.seed)


async def _sse(state: ServeState, job: GenerationJob, include_usage: bool) -> AsyncIterator[str]:
    created, name = int(job.queued), job.loaded.name
    done = False
    try:
        yield chunk_event(job.id, created, name, {"role": "assistant", "content": ""})
        while True:
            kind, value = await job.events.get()
            if kind == "delta":
                yield chunk_event(job.id, created, name, {"content": value})
                continue
            done = True
            result: GenerationResult = value
            if result.status == "error":
                failure = ApiError(500, f"Generation failed: {result.error}", type="server_error",
                                   code="generation_failed")
                yield f"data: {json.dumps(failure.body())}\n\n"
            else:
                yield chunk_event(job.id, created, name, {}, finish_reason=result.finish_reason)
                if include_usage:
                    yield chunk_event(job.id, created, name, {}, with_choice=False,
                                      usage=usage_block(result.prompt_tokens, result.completion_tokens))
            yield DONE_EVENT
            return
    finally:
        if not done:
            job.cancel()  # the client went away: free the model for the next request


def create_app(config: ServeConfig, db_path: Path, slot: ModelSlot) -> FastAPI:
    """The ASGI app around an already loaded model slot; the lifespan starts and drains the workers."""
    state = ServeState(config=config, slot=slot, engine=Engine(config.queue_size, config.torch_threads),
                       writer=UsageWriter(db_path, log_content=config.log_content, buffer=config.usage_buffer))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.writer.start()
        state.engine.start()
        yield
        # uvicorn has already waited for open requests; finish the queue, then flush the log.
        await asyncio.to_thread(state.engine.stop)
        await asyncio.to_thread(state.writer.close)
        log.info("usage log flushed: %d rows written, %d dropped", state.writer.written, state.writer.dropped)

    app = FastAPI(title="ingrain", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.serve = state

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(ApiError(exc.status_code, str(exc.detail), type=kind).body(),
                            status_code=exc.status_code)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        current = slot.current
        return {"status": "ok", "model": current.name if current else None,
                "backend": current.backend if current else None, "waiting": state.engine.waiting,
                "swaps": slot.swaps, "usage_rows_dropped": state.writer.dropped}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        state.authenticate(request)
        current = await slot.refresh()
        return {"object": "list", "data": [{"id": current.name, "object": "model", "created": current.created,
                                            "owned_by": "ingrain"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        started = time.time()
        key_id, req, loaded, prompt_ids = None, None, None, None
        try:
            key_id = state.authenticate(request)
            req = parse_body(await request.body(), ChatRequest)
            loaded = await slot.refresh()
            _check_model(req, loaded)
            prompt_ids = _tokenize(loaded, req.chat())
            params = _params(req, loaded, len(prompt_ids), config)
            job = GenerationJob(loaded, prompt_ids, params, asyncio.get_running_loop())
        except ApiError as exc:
            _log_refusal(state, exc, started, key_id, req, loaded, prompt_ids)
            raise
        chat, stream = req.chat(), req.stream
        logged = {"max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p,
                  "stop": list(params.stop) or None}

        def on_done(job: GenerationJob, result: GenerationResult) -> None:
            state.writer.log_request(_row(job.id, started=started, key_id=key_id, status=result.status,
                                          stream=stream, model=job.loaded.name, chat=chat, params=logged,
                                          result=result))

        job.on_done = on_done
        try:
            state.engine.submit(job)
        except QueueFull:
            exc = ApiError(429, f"The server is busy ({config.queue_size} requests already waiting). "
                                "Retry after the number of seconds in Retry-After.",
                           type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(state.retry_after())})
            _log_refusal(state, exc, started, key_id, req, loaded, prompt_ids, response_id=job.id)
            raise exc from None
        state.recent_ids.append(job.id)
        if stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_sse(state, job, include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        result: GenerationResult | None = None
        try:
            while result is None:
                kind, value = await job.events.get()
                result = value if kind == "done" else None
        finally:
            if result is None:
                job.cancel()
        if result.status == "error":
            raise ApiError(500, f"Generation failed: {result.error}", type="server_error",
                           code="generation_failed")
        return JSONResponse(completion_body(job.id, int(started), loaded.name, result.text,
                                            result.finish_reason, result.prompt_tokens,
                                            result.completion_tokens))

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        key_id = state.authenticate(request)
        body: FeedbackRequest = parse_body(await request.body(), FeedbackRequest)
        if body.rating is None and not body.correction:
            raise ApiError(400, "Send a rating (-1, 0 or 1), a correction, or both.", code="invalid_value")
        known = body.response_id in state.recent_ids or usage.usage_row(slot.store, body.response_id)
        if not known:
            raise ApiError(404, f"No response {body.response_id!r} was served here; send the `id` of a chat "
                                "completion.", type="not_found_error", code="response_not_found",
                           param="response_id")
        state.writer.log_feedback({"response_id": body.response_id, "rating": body.rating,
                                   "correction": body.correction, "comment": body.comment, "key_id": key_id})
        return {"object": "feedback", "response_id": body.response_id, "status": "recorded"}

    return app


def _log_refusal(state: ServeState, exc: ApiError, started: float, key_id: int | None,
                 req: ChatRequest | None, loaded: LoadedModel | None, prompt_ids: list[int] | None,
                 response_id: str | None = None) -> None:
    """Refused requests are logged too, so the log has one row per request (content per policy)."""
    state.writer.log_request(_row(
        response_id or f"chatcmpl-{uuid.uuid4().hex[:24]}", started=started, key_id=key_id,
        status=STATUS_BY_HTTP.get(exc.status, "error"), stream=bool(req and req.stream),
        model=loaded.name if loaded else None,
        chat=req.chat() if req and exc.status != 401 else None, error=exc.message,
        prompt_tokens=len(prompt_ids) if prompt_ids else None))
