"""The OpenAI wire format: request models, response and stream-chunk bodies, and error bodies."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MODEL_ALIAS = "ingrain"
"""Clients may ask for this name instead of a version: it means whatever version is being served."""


class ApiError(Exception):
    """An error answered with an OpenAI-style body `{"error": {"message", "type", "code"}}`."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type, code
        self.param, self.headers = param, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def event(self) -> str:
        """The error as one server-sent event, for a stream whose 200 status has already gone out."""
        return f"data: {json.dumps(self.body())}\n\n"


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(BaseModel):
    """The fields of `POST /v1/chat/completions` this endpoint honours; others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    seed: int | None = None

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(s for s in stops if s)

    def chat(self) -> list[dict[str, str]]:
        """Messages for the chat template; `developer` is OpenAI's newer name for `system`."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in self.messages]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    response_id: str = Field(min_length=1)
    rating: Literal[-1, 0, 1] | None = None
    correction: str | None = None
    comment: str | None = None


def parse_json(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or a 400 saying why it is not one."""
    try:
        data = json.loads(raw or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON ({exc}).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Validate a JSON body, turning every failure into a 400 that names the offending field."""
    return validate_body(parse_json(raw), model)


def validate_body(data: dict[str, Any], model: type[BaseModel]) -> Any:
    """`parse_body` for a body already parsed by `parse_json`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"Invalid request: {where}: {first['msg']} "
                            f"({exc.error_count()} problem(s) in total).",
                       code="invalid_value", param=where or None) from None


def usage_block(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(response_id: str, created: int, model: str, text: str, finish_reason: str | None,
                    prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": response_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage_block(prompt_tokens, completion_tokens),
    }


def chunk_event(response_id: str, created: int, model: str, delta: dict[str, Any],
                finish_reason: str | None = None, usage: dict[str, int] | None = None,
                with_choice: bool = True) -> str:
    """One server-sent event carrying a `chat.completion.chunk`."""
    body: dict[str, Any] = {"id": response_id, "object": "chat.completion.chunk", "created": created,
                            "model": model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                                         "logprobs": None}] if with_choice else []}
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


DONE_EVENT = "data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Headers of every event stream: no caching, and no buffering in a reverse proxy in front."""
