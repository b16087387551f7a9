"""A real OpenAI-compatible upstream on loopback (FastAPI + uvicorn in a thread) with a rule-based teacher.

Tests, benches and the end-to-end check point `ingrain serve --upstream` at it. The teacher answers a
bicycle shop's triage task in a fixed three-line format, so a distilled local model has something exact
to learn and an agreement check has something exact to compare.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tools.serve.schemas import DONE_EVENT, ApiError, chunk_event, completion_body, usage_block

TRIAGE_SYSTEM_PROMPT = """\
You are the triage assistant of Spoke & Sprocket, an independent bicycle shop with a repair workshop, \
a rental fleet and a small showroom. Customers write to us by email and through the contact form on our \
website. Your job is to read one customer message and sort it so the right person in the shop picks it up.

Decide the category:
- repair: anything broken, worn or making noise - flat tyres, punctures, brakes, chains, gears, spokes, \
wheels, squeaks, a bike that needs a service.
- rental: hiring or borrowing a bike for a day, a weekend or a guided tour.
- sales: buying a new bike or accessories, prices, trade-ins, selling a used bike to us.
- other: everything else, such as opening hours, lost property, jobs or general questions.

Decide the urgency: high when the customer needs the bike today, tomorrow, right now or before a race, \
or says it is urgent; normal otherwise.

Answer with exactly three lines and nothing else, no greeting and no explanation:
Category: <repair|rental|sales|other>
Urgency: <high|normal>
Reply: <one short, polite sentence we can send back to the customer>

Never promise a price, a date or a repair outcome in the reply; the staff member who picks up the \
message will do that. If a message mentions several things, choose the category of the first thing the \
customer needs done. Write in plain English even when the customer does not."""

CATEGORIES = ("repair", "rental", "sales", "other")
REPLIES = {
    "repair": "Thanks for getting in touch; please bring your bike to our workshop and a mechanic will look at it.",
    "rental": "Thanks for getting in touch; we have rental bikes available and will confirm your booking by email.",
    "sales": "Thanks for getting in touch; one of our sales advisors will send you prices and availability.",
    "other": "Thanks for getting in touch; a member of our team will get back to you shortly.",
}
# Word prefixes, checked in this order: a message about a broken bike it wants to rent is a repair first.
KEYWORDS = {
    "repair": ("flat", "punctur", "brake", "chain", "gear", "spoke", "wheel", "broke", "squeak", "repair",
               "fix", "service", "derailleur", "tyre", "tire"),
    "rental": ("rent", "hire", "borrow", "weekend", "tour"),
    "sales": ("buy", "price", "cost", "helmet", "sell", "purchase", "trade-in"),
}
URGENT_WORDS = {"today", "urgent", "urgently", "asap", "now", "race", "tomorrow", "tonight", "immediately"}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def triage_category(message: str) -> str:
    """The category the teacher's keyword rules give a customer message."""
    lowered = message.lower()
    words = re.findall(r"[a-z][a-z'-]*", lowered)
    for category, stems in KEYWORDS.items():
        if any(word.startswith(stems) for word in words):
            return category
    return "sales" if "new bike" in lowered else "other"


def triage_teacher(messages: list[dict[str, Any]]) -> str:
    """The teacher's answer to a chat: three lines, category and urgency decided by keywords."""
    last = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    category = triage_category(last)
    urgent = bool(URGENT_WORDS & set(re.findall(r"[a-z]+", last.lower())))
    return f"Category: {category}\nUrgency: {'high' if urgent else 'normal'}\nReply: {REPLIES[category]}"


_BIKES = ("road bike", "mountain bike", "e-bike", "gravel bike", "city bike", "kids' bike", "cargo bike",
          "folding bike", "hybrid", "tandem", "commuter bike", "BMX")
_PARTS = ("rear brake", "front brake", "chain", "gears", "back wheel", "front wheel", "spokes", "brake pads",
          "gear cable", "chainring", "rear derailleur", "front tyre")
_WHEN = ("today", "tomorrow", "on Monday", "on Friday", "next week", "on Saturday morning", "this Thursday",
         "in two weeks", "before my race on Sunday", "as soon as possible", "right now", "at the end of May")
_NAMES = ("Anna", "Ben", "Chloe", "Dev", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kemi", "Luca",
          "Maya", "Noah", "Olga", "Pablo")
_COUNT = ("two", "three", "four", "five", "six")
_TEMPLATES = {
    "repair": (
        "My {bike} has a flat tyre and I need it {when}, can you help?",
        "The {part} on my {bike} is making a horrible noise. Could you take a look {when}?",
        "I think my {part} is broken after a fall. Can I drop the {bike} off {when}?",
        "Got a puncture on the way to work, is the workshop open {when}?",
        "My {bike} needs a full service and the {part} feels loose. Any slot {when}?",
        "The {part} keeps slipping on my {bike}. How soon can you fix it?",
        "Squeaky {part} on my daughter's {bike}, could a mechanic check it {when}?",
    ),
    "rental": (
        "Could we rent {count} bikes {when} for a family ride?",
        "I'd like to hire a {bike} for the weekend. Do you have one free?",
        "Is it possible to borrow a {bike} {when}? Mine is away.",
        "Do you run guided tours {when}? We are a group of {count}.",
        "We want to hire {count} {bike}s {when}, what do we need to bring?",
        "Can I rent a {bike} {when} and return it the day after?",
    ),
    "sales": (
        "How much does a new {bike} cost? I would like to buy one {when}.",
        "What is the price of your cheapest {bike}?",
        "I want to buy a helmet for my son, which sizes do you stock?",
        "Would you buy my old {bike} if I bring it in {when}?",
        "Do you sell {bike}s with a trade-in offer?",
        "Looking to purchase {count} helmets for our club, do you give a discount?",
    ),
    "other": (
        "What are your opening hours {when}?",
        "I think I left my gloves in the shop {when}. Did anyone find them?",
        "Do you have any job openings for a mechanic?",
        "Is there parking near the shop for a car with a roof rack?",
        "Can I pay by card or only in cash?",
        "Do you have a newsletter I can sign up to?",
        "Are dogs allowed inside the shop?",
    ),
}
_OPENINGS = ("", "Hi! ", "Hello, this is {name}. ", "Hi there! ", "Good morning. ", "{name} here. ")
_CLOSINGS = ("", " Thanks!", " Cheers, {name}", " Many thanks.", " Thank you in advance.", " Best, {name}")


def triage_messages(n: int, seed: int) -> list[tuple[str, str]]:
    """n customer messages with their category, all four categories present (for n >= 4); seeds differ."""
    rng = random.Random(seed)
    order = [CATEGORIES[i % len(CATEGORIES)] for i in range(n)]
    rng.shuffle(order)
    out: list[tuple[str, str]] = []
    for category in order:
        bike = rng.choice(_BIKES)
        slots = {"bike": bike, "part": rng.choice(_PARTS), "when": rng.choice(_WHEN),
                 "name": rng.choice(_NAMES), "count": rng.choice(_COUNT)}
        body = rng.choice(_TEMPLATES[category]).format(**slots)
        text = (rng.choice(_OPENINGS) + body + rng.choice(_CLOSINGS)).format(**slots)
        out.append((text[0].upper() + text[1:], category))
    return out


def _tokens(texts: Iterable[str]) -> int:
    return sum(len(t.split()) for t in texts)


class FakeUpstream:
    """An OpenAI-compatible server on 127.0.0.1 (free port) for the length of a `with` block.

    Every attribute is read per request, so a test may change `answer`, `fail_status`, `garbage`,
    `delay_s` or `chunk_delay_s` while it runs. `requests` records each call's path, JSON body and
    (lower-cased) headers.
    """

    def __init__(self, answer: Callable[[list[dict[str, Any]]], str] = triage_teacher, *,
                 models: tuple[str, ...] = ("teacher-large",), delay_s: float = 0.0,
                 fail_status: int | None = None, garbage: bool = False, require_key: str | None = None,
                 chunk_delay_s: float = 0.0) -> None:
        self.answer, self.models, self.delay_s = answer, models, delay_s
        self.fail_status, self.garbage, self.require_key = fail_status, garbage, require_key
        self.chunk_delay_s = chunk_delay_s
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeUpstream:
        server = uvicorn.Server(uvicorn.Config(self._app(), host="127.0.0.1", port=0, log_level="warning",
                                               lifespan="off"))
        self._server = server
        self._thread = threading.Thread(target=server.run, name="fake-upstream", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(30)

    def chat_requests(self) -> list[dict[str, Any]]:
        """The recorded chat-completion calls only (not /v1/models)."""
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def _error(self, status: int, message: str, code: str) -> JSONResponse:
        kind = "authentication_error" if status == 401 else "invalid_request_error" if status < 500 \
            else "server_error"
        return JSONResponse(ApiError(status, message, type=kind, code=code).body(), status_code=status)

    def _app(self) -> FastAPI:
        app = FastAPI()

        def refused(request: Request) -> Any:
            if self.require_key and request.headers.get("authorization") != f"Bearer {self.require_key}":
                return self._error(401, "Incorrect API key provided.", "invalid_api_key")
            return None

        @app.get("/v1/models")
        async def models(request: Request) -> Any:
            self.requests.append({"path": request.url.path, "body": None, "headers": dict(request.headers)})
            return refused(request) or {"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "fake-upstream"}
                for name in self.models]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = json.loads(await request.body())
            self.requests.append({"path": request.url.path, "body": body, "headers": dict(request.headers)})
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if (denied := refused(request)) is not None:
                return denied
            if self.fail_status:
                return self._error(self.fail_status, f"The fake upstream was told to fail with "
                                                     f"{self.fail_status}.", "fake_failure")
            if self.garbage:
                return Response("<html>502 Bad Gateway from a confused proxy</html>", media_type="text/html")
            messages = body.get("messages") or []
            text = self.answer(messages)
            prompt_tokens = _tokens(_text(m.get("content")) for m in messages)
            completion_tokens = _tokens([text])
            response_id, created, model = f"chatcmpl-up{uuid.uuid4().hex[:20]}", int(time.time()), body["model"]
            if not body.get("stream"):
                return JSONResponse(completion_body(response_id, created, model, text, "stop", prompt_tokens,
                                                    completion_tokens))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

            async def chunks() -> AsyncIterator[str]:
                yield chunk_event(response_id, created, model, {"role": "assistant", "content": ""})
                for piece in re.split(r"(?<=\s)(?=\S)", text):
                    if self.chunk_delay_s:
                        await asyncio.sleep(self.chunk_delay_s)
                    yield chunk_event(response_id, created, model, {"content": piece})
                yield chunk_event(response_id, created, model, {}, finish_reason="stop")
                if include_usage:
                    yield chunk_event(response_id, created, model, {}, with_choice=False,
                                      usage=usage_block(prompt_tokens, completion_tokens))
                yield DONE_EVENT

            return StreamingResponse(chunks(), media_type="text/event-stream")

        return app
