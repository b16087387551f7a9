"""Text generation for the endpoint: a token loop with stop strings and cancellation, run by one worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.serve.slot import LoadedModel

log = logging.getLogger("ingrain.serve")


@dataclass(frozen=True)
class SamplingParams:
    """How one completion is sampled (validated by the HTTP layer)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class GenerationResult:
    """What a job produced, with the numbers its usage row needs."""

    text: str = ""
    finish_reason: str | None = None
    """stop (end of reply or a stop string) | length (max_tokens or context) | None if it never finished."""
    status: str = "ok"
    """ok | client_disconnected | error."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None


class QueueFull(Exception):
    """The generation queue is full; the caller should retry later."""


def _sample(logits: Any, params: SamplingParams, generator: Any) -> int:
    import torch

    if params.temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest head of the distribution whose mass reaches top_p (always at least one token).
        outside = sorted_probs.cumsum(-1) - sorted_probs > params.top_p
        sorted_probs[outside] = 0.0
        pick = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[pick])
    return int(torch.multinomial(probs, 1, generator=generator))


def _safe_end(text: str, stops: tuple[str, ...]) -> int:
    """How much of `text` can be sent: hold back a half-decoded character or a possible stop-string start."""
    end = len(text.rstrip("\ufffd"))
    for stop in stops:
        for k in range(min(len(stop) - 1, end), 0, -1):
            if text[:end].endswith(stop[:k]):
                end -= k
                break
    return end


class Decoding:
    """One reply being generated: samples each token, finds the end, and emits text as it becomes safe to send."""

    def __init__(self, loaded: LoadedModel, prompt_ids: list[int], params: SamplingParams,
                 emit: Callable[[str], None] = lambda _: None) -> None:
        import torch

        self.loaded, self.params, self.emit = loaded, params, emit
        self.result = GenerationResult(prompt_tokens=len(prompt_ids), started=time.time(), finish_reason="length")
        self.budget = min(params.max_tokens, loaded.context_length - len(prompt_ids))
        self.generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        self.text_ids: list[int] = []
        self.text, self.sent = "", 0
        self.done = self.budget <= 0

    def push(self, logits: Any) -> int | None:
        """Sample the next token from `logits`; the token to feed back, or None when the reply is complete."""
        import torch

        if self.done:
            return None
        if not isinstance(logits, torch.Tensor):
            logits = torch.from_numpy(logits)
        token = _sample(logits, self.params, self.generator)
        result = self.result
        result.completion_tokens += 1
        if result.ttft_s is None:
            result.ttft_s = time.time() - result.started
        if token in self.loaded.eos_ids:
            return self._end("stop")
        self.text_ids.append(token)
        self.text = self.loaded.tokenizer.decode(self.text_ids, skip_special_tokens=True)
        hits = [i for i in (self.text.find(s, max(0, self.sent - len(s))) for s in self.params.stop) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            return self._end("stop")
        end = _safe_end(self.text, self.params.stop)
        if end > self.sent:
            self.emit(self.text[self.sent:end])
            self.sent = end
        if result.completion_tokens >= self.budget:
            return self._end("length")
        return token

    def cancel(self) -> None:
        """The client went away: keep only what was sent."""
        self.result.status, self.result.finish_reason = "client_disconnected", None
        self.done = True

    def _end(self, reason: str) -> None:
        self.result.finish_reason = reason
        self.done = True
        return None

    def finish(self) -> GenerationResult:
        """Emit what was held back (unless cancelled) and close the result."""
        result = self.result
        if len(self.text) > self.sent and result.status == "ok":
            self.emit(self.text[self.sent:])
        result.text = self.text if result.status == "ok" else self.text[:self.sent]
        result.finished = time.time()
        return result


def generate(loaded: LoadedModel, prompt_ids: list[int], params: SamplingParams, *,
             emit: Callable[[str], None] = lambda _: None,
             cancelled: Callable[[], bool] = lambda: False) -> GenerationResult:
    """Generate one reply token by token with the KV cache, calling `emit` with each new piece of text."""
    decoding = Decoding(loaded, prompt_ids, params, emit)
    if decoding.done:
        return decoding.finish()
    runner = loaded.runner
    handle, logits = runner.start(prompt_ids)
    try:
        while True:
            if cancelled():
                decoding.cancel()
                break
            token = decoding.push(logits)
            if token is None:
                break
            logits = runner.step([(handle, token)])[0]
    finally:
        runner.release(handle)
    return decoding.finish()


@dataclass
class GenerationJob:
    """One admitted request: the model it was given, its prompt, and a channel back to the event loop."""

    loaded: LoadedModel
    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    on_done: Callable[[GenerationJob, GenerationResult], None] = lambda job, result: None
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    queued: float = field(default_factory=time.time)
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    """("delta", str) items, then one ("done", GenerationResult)."""
    _cancel: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the worker to stop this job (the client went away)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _send(self, item: tuple[str, Any]) -> None:
        # RuntimeError: the event loop is gone (shutdown), so nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)


@dataclass
class _Live:
    """A job whose sequence is in the runner's cache."""

    job: GenerationJob
    decoding: Decoding
    handle: Any = None
    logits: Any = None


class Engine:
    """One worker thread decodes every admitted job, batching the live sequences of each model.

    Each step samples one token for every live sequence and then runs one forward pass per model for all
    of them (continuous batching: a job joins or leaves between steps). How many sequences a model keeps
    live is its runner's `max_batch` (8 with llama.cpp, 1 with PyTorch); the rest wait in arrival order.
    A hot swap needs nothing special: each job keeps the model it was admitted with.

    Admission is bounded: `submit` raises QueueFull when `queue_size` jobs are already waiting.
    """

    def __init__(self, queue_size: int = 16, threads: int | None = None) -> None:
        self.threads = threads
        self._queue: queue.Queue[GenerationJob | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="ingrain-generate", daemon=True)
        self._held: GenerationJob | None = None
        self.completed = 0
        self.avg_job_seconds = 1.0
        """Moving average of job run time, for Retry-After."""
        self.max_live = 0
        """Most sequences decoded in one step so far."""

    def start(self) -> Engine:
        self._thread.start()
        return self

    @property
    def waiting(self) -> int:
        return self._queue.qsize() + (self._held is not None)

    def submit(self, job: GenerationJob) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull from None

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the running jobs and anything queued, then end the worker."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        import torch

        # The setting is process-wide: put it back so an embedding process is left as it was.
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads or previous)
        try:
            self._loop()
        finally:
            torch.set_num_threads(previous)

    def _loop(self) -> None:
        live: list[_Live] = []
        stopping = False
        while True:
            stopping = self._admit(live, stopping)
            if not live:
                if stopping:
                    return
                continue
            self.max_live = max(self.max_live, len(live))
            feed: list[tuple[_Live, int]] = []
            for item in live:
                if item.job.cancelled:
                    item.decoding.cancel()
                    token = None
                else:
                    token = item.decoding.push(item.logits)
                if token is None:
                    self._finish(item)
                else:
                    feed.append((item, token))
            live = self._step(feed)

    def _admit(self, live: list[_Live], stopping: bool) -> bool:
        """Start queued jobs while their model has room; block for one only when nothing is live."""
        while not stopping:
            if self._held is None:
                try:
                    job = self._queue.get(block=not live)
                except queue.Empty:
                    break
                if job is None:
                    return True
                self._held = job
            job = self._held
            runner = job.loaded.runner
            if not job.cancelled and sum(item.job.loaded.runner is runner for item in live) >= runner.max_batch:
                break
            self._held = None
            item = _Live(job, Decoding(job.loaded, job.prompt_ids, job.params,
                                       emit=lambda piece, job=job: job._send(("delta", piece))))
            if job.cancelled:
                item.decoding.cancel()
                self._finish(item)
                continue
            if item.decoding.done:
                self._finish(item)
                continue
            try:
                item.handle, item.logits = runner.start(job.prompt_ids)
            except Exception as exc:
                self._fail([item], exc)
                continue
            live.append(item)
        return stopping

    def _step(self, feed: list[tuple[_Live, int]]) -> list[_Live]:
        """One forward pass per model for every sequence that goes on; the ones still live."""
        groups: dict[int, list[tuple[_Live, int]]] = {}
        for item, token in feed:
            groups.setdefault(id(item.job.loaded.runner), []).append((item, token))
        live = []
        for group in groups.values():
            runner = group[0][0].job.loaded.runner
            try:
                logits = runner.step([(item.handle, token) for item, token in group])
            except Exception as exc:
                self._fail([item for item, _ in group], exc)
                continue
            for (item, _), row in zip(group, logits, strict=True):
                item.logits = row
                live.append(item)
        return live

    def _fail(self, items: list[_Live], exc: Exception) -> None:
        log.exception("generation failed for %s", ", ".join(item.job.id for item in items), exc_info=exc)
        for item in items:
            item.decoding.result.status = "error"
            item.decoding.result.error = f"{type(exc).__name__}: {exc}"
            item.decoding.result.finish_reason = None
            self._finish(item)

    def _finish(self, item: _Live) -> None:
        if item.handle is not None:
            with contextlib.suppress(Exception):
                item.job.loaded.runner.release(item.handle)
            item.handle = None
        result = item.decoding.finish()
        job = item.job
        self.completed += 1
        if result.started and result.finished:
            self.avg_job_seconds = 0.8 * self.avg_job_seconds + 0.2 * (result.finished - result.started)
        try:
            job.on_done(job, result)
        except Exception:
            log.exception("usage logging failed for %s", job.id)
        job._send(("done", result))
