"""The FastAPI app: OpenAI-compatible chat completions, models, feedback and health, with key checks."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
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
from tools.serve.routing import RouteTable, answers_agree
from tools.serve.schemas import (
    DONE_EVENT,
    MODEL_ALIAS,
    SSE_HEADERS,
    ApiError,
    ChatRequest,
    FeedbackRequest,
    chunk_event,
    completion_body,
    parse_body,
    parse_json,
    usage_block,
    validate_body,
)
from tools.serve.slot import LoadedModel, ModelSlot
from tools.serve.upstream import Upstream, lenient_chat
from tools.serve.usage import UsageWriter, split_chat

log = logging.getLogger("ingrain.serve")

KEY_CACHE_SECONDS = 1.0
STATUS_BY_HTTP = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 429: "queue_full"}


@dataclass
class ServeState:
    """What the routes share: the model slot, the generation worker, the usage writer, the key cache, and
    with --upstream the proxy and (with --route auto) the route table."""

    config: ServeConfig
    slot: ModelSlot
    engine: Engine
    writer: UsageWriter
    recent_ids: deque[str] = field(default_factory=lambda: deque(maxlen=10_000))
    upstream: Upstream | None = None
    router: RouteTable | None = None
    background: set[asyncio.Task] = field(default_factory=set)
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

    def log_row(self, row: dict[str, Any]) -> None:
        """Hand a usage row to the writer; its id is known to /v1/feedback at once, before it is written."""
        self.recent_ids.append(row["id"])
        self.writer.log_request(row)

    def spawn(self, coroutine: Any) -> None:
        """Run a background coroutine (a shadow check), keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def _row(response_id: str, *, started: float, key_id: int | None, status: str, stream: bool = False,
         model: str | None = None, chat: list[dict[str, str]] | None = None, params: dict | None = None,
         result: GenerationResult | None = None, error: str | None = None,
         prompt_tokens: int | None = None, route: str | None = None) -> dict[str, Any]:
    system, messages = split_chat(chat or [])
    return {
        "id": response_id, "ts": started, "model": model, "key_id": key_id, "status": status,
        "stream": stream, "system_prompt": system, "messages": messages,
        "source": "local", "route": route, "partial": status == "client_disconnected",
        "response": result.text if result else None,
        "finish_reason": result.finish_reason if result else None,
        "prompt_tokens": result.prompt_tokens if result else prompt_tokens,
        "completion_tokens": result.completion_tokens if result else 0,
        "latency_s": round((result.finished if result and result.finished else time.time()) - started, 4),
        "ttft_s": round(result.ttft_s, 4) if result and result.ttft_s is not None else None,
        "params": params, "error": error or (result.error if result else None),
    }


def _tokenize(loaded: LoadedModel, chat: list[dict[str, str]]) -> list[int]:
    """The prompt's token ids: the chat as the model is given it (with a knowledge version's excerpts)."""
    chat = loaded.prompt_chat(chat)
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


async def _sse(job: GenerationJob, include_usage: bool, name: str) -> AsyncIterator[str]:
    created = int(job.queued)
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
                yield ApiError(500, f"Generation failed: {result.error}", type="server_error",
                               code="generation_failed").event()
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


@dataclass
class LocalAnswer:
    """A request the local model will answer: what to generate from, and how to name and log it."""

    req: ChatRequest
    loaded: LoadedModel
    prompt_ids: list[int]
    params: SamplingParams
    reply_model: str
    """The `model` the response carries: the version, or for a routed request the name the client asked for."""
    route: str | None = None
    after: Callable[[GenerationResult], None] | None = None
    """Called with the result (from the worker thread) once the job ends; a routed request's shadow check."""


def _local_answer(req: ChatRequest, loaded: LoadedModel, prompt_ids: list[int], config: ServeConfig, *,
                  route: str | None = None) -> LocalAnswer:
    params = _params(req, loaded, len(prompt_ids), config)
    return LocalAnswer(req, loaded, prompt_ids, params, req.model if route else loaded.name, route=route)


def create_app(config: ServeConfig, db_path: Path, slot: ModelSlot) -> FastAPI:
    """The ASGI app around an already loaded model slot; the lifespan starts and drains the workers."""
    state = ServeState(config=config, slot=slot, engine=Engine(config.queue_size, config.torch_threads),
                       writer=UsageWriter(db_path, log_content=config.log_content, buffer=config.usage_buffer))
    if config.upstream:
        state.upstream = Upstream(config.upstream, config.upstream_key(), config.upstream_timeout_s,
                                  state.log_row)
        if config.route == "auto":
            state.router = RouteTable(slot.store, config.shadow_rate)
            state.router.refresh()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.writer.start()
        state.engine.start()
        if state.upstream:
            await state.upstream.start()
        yield
        # uvicorn has already waited for open requests; finish the queue and the shadow checks, then flush.
        await asyncio.to_thread(state.engine.stop)
        await asyncio.sleep(0)  # let shadow checks scheduled by the last jobs start
        if state.background:
            await asyncio.wait(list(state.background), timeout=config.upstream_timeout_s)
        if state.upstream:
            await state.upstream.close()
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
                "swaps": slot.swaps, "usage_rows_dropped": state.writer.dropped,
                "upstream": config.upstream, "route": config.route}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        state.authenticate(request)
        current = await slot.refresh()
        data = [{"id": current.name, "object": "model", "created": current.created, "owned_by": "ingrain"}]
        if state.upstream:
            data += [{"id": name, "object": "model", "created": 0, "owned_by": "upstream"}
                     for name in await state.upstream.model_names() if name not in (current.name, MODEL_ALIAS)]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        started = time.time()
        key_id, req, loaded, prompt_ids, local = None, None, None, None, None
        try:
            key_id = state.authenticate(request)
            raw = await request.body()
            loaded = await slot.refresh()
            body = parse_json(raw)
            model = body.get("model")
            # Any other model name goes upstream as it is (the relay logs it, refusals included).
            if not (state.upstream and isinstance(model, str) and model not in (loaded.name, MODEL_ALIAS)):
                req = validate_body(body, ChatRequest)
                _check_model(req, loaded)
                prompt_ids = _tokenize(loaded, req.chat())
                local = _local_answer(req, loaded, prompt_ids, config)
        except ApiError as exc:
            _log_refusal(state, exc, started, key_id, req, loaded, prompt_ids)
            raise
        if local is None:
            return await upstream_bound(raw, body, started, key_id, loaded)
        return await answer_locally(local, started, key_id)

    async def upstream_bound(raw: bytes, body: dict[str, Any], started: float, key_id: int | None,
                             loaded: LoadedModel) -> Response:
        assert state.upstream is not None
        found = state.router.match(lenient_chat(body), body["model"]) if state.router else None
        if found is not None:
            try:
                req = validate_body(body, ChatRequest)
                chat = req.chat()
                if found["match"].get("strip_system"):
                    chat = [m for m in chat if m["role"] != "system"]
                local = _local_answer(req, loaded, _tokenize(loaded, chat), config, route=found["pattern_id"])
            except ApiError as exc:
                # Anything the local model cannot take (n > 1, too long, unknown fields) stays upstream.
                log.info("route %s: sending a request upstream instead (%s)", found["pattern_id"], exc.message)
            else:
                if state.router.shadow_due(found["pattern_id"]):
                    local.after = shadow_check(body, found["pattern_id"], key_id)
                return await answer_locally(local, started, key_id)
        return await state.upstream.relay(raw, body, key_id=key_id, started=started)

    def shadow_check(body: dict[str, Any], pattern_id: str, key_id: int | None) -> Callable[[GenerationResult], None]:
        loop = asyncio.get_running_loop()

        async def compare(local_text: str) -> None:
            assert state.upstream is not None and state.router is not None
            upstream_text = await state.upstream.complete(body, key_id=key_id, route=pattern_id)
            if upstream_text is not None:
                state.router.record(pattern_id, answers_agree(local_text, upstream_text))

        def after(result: GenerationResult) -> None:  # on the generation worker's thread
            if result.status == "ok":
                loop.call_soon_threadsafe(state.spawn, compare(result.text))

        return after

    async def answer_locally(local: LocalAnswer, started: float, key_id: int | None) -> Response:
        req, loaded, params = local.req, local.loaded, local.params
        job = GenerationJob(loaded, local.prompt_ids, params, asyncio.get_running_loop())
        chat, stream = req.chat(), req.stream
        logged = {"max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p,
                  "stop": list(params.stop) or None}

        def on_done(job: GenerationJob, result: GenerationResult) -> None:
            state.writer.log_request(_row(job.id, started=started, key_id=key_id, status=result.status,
                                          stream=stream, model=job.loaded.name, chat=chat, params=logged,
                                          result=result, route=local.route))
            if local.after is not None:
                local.after(result)

        job.on_done = on_done
        try:
            state.engine.submit(job)
        except QueueFull:
            exc = ApiError(429, f"The server is busy ({config.queue_size} requests already waiting). "
                                "Retry after the number of seconds in Retry-After.",
                           type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(state.retry_after())})
            _log_refusal(state, exc, started, key_id, req, loaded, local.prompt_ids, response_id=job.id)
            raise exc from None
        state.recent_ids.append(job.id)
        if stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_sse(job, include_usage, local.reply_model), media_type="text/event-stream",
                                     headers=SSE_HEADERS)
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
        return JSONResponse(completion_body(job.id, int(started), local.reply_model, result.text,
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
