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

from tools.serve_models import LoadedModel

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


def generate(loaded: LoadedModel, prompt_ids: list[int], params: SamplingParams, *,
             emit: Callable[[str], None] = lambda _: None,
             cancelled: Callable[[], bool] = lambda: False) -> GenerationResult:
    """Generate one reply token by token with the KV cache, calling `emit` with each new piece of text."""
    import torch

    result = GenerationResult(prompt_tokens=len(prompt_ids), started=time.time())
    tokenizer, model = loaded.tokenizer, loaded.model
    budget = min(params.max_tokens, loaded.context_length - len(prompt_ids))
    generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
    text_ids: list[int] = []
    text, sent = "", 0
    result.finish_reason = "length"
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        for _ in range(budget):
            if cancelled():
                result.status, result.finish_reason = "client_disconnected", None
                break
            token = _sample(out.logits[0, -1], params, generator)
            result.completion_tokens += 1
            if result.ttft_s is None:
                result.ttft_s = time.time() - result.started
            if token in loaded.eos_ids:
                result.finish_reason = "stop"
                break
            text_ids.append(token)
            text = tokenizer.decode(text_ids, skip_special_tokens=True)
            hits = [i for i in (text.find(s, max(0, sent - len(s))) for s in params.stop) if i >= 0]
            if hits:
                text = text[:min(hits)]
                result.finish_reason = "stop"
                break
            end = _safe_end(text, params.stop)
            if end > sent:
                emit(text[sent:end])
                sent = end
            out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    if len(text) > sent and result.status == "ok":
        emit(text[sent:])
    result.text = text if result.status == "ok" else text[:sent]
    result.finished = time.time()
    return result


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


class Engine:
    """One worker thread runs jobs in arrival order (one model, two cores: batching would not pay here).

    Admission is bounded: `submit` raises QueueFull when `queue_size` jobs are already waiting.
    """

    def __init__(self, queue_size: int = 16, threads: int | None = None) -> None:
        self.threads = threads
        self._queue: queue.Queue[GenerationJob | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="ingrain-generate", daemon=True)
        self.completed = 0
        self.avg_job_seconds = 1.0
        """Moving average of job run time, for Retry-After."""

    def start(self) -> Engine:
        self._thread.start()
        return self

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, job: GenerationJob) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull from None

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the running job and anything queued, then end the worker."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        import torch

        # The setting is process-wide: put it back so an embedding process is left as it was.
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads or previous)
        try:
            while (job := self._queue.get()) is not None:
                self._run_job(job)
        finally:
            torch.set_num_threads(previous)

    def _run_job(self, job: GenerationJob) -> None:
        if job.cancelled:
            result = GenerationResult(status="client_disconnected", prompt_tokens=len(job.prompt_ids),
                                      started=time.time(), finished=time.time())
        else:
            try:
                result = generate(job.loaded, job.prompt_ids, job.params,
                                  emit=lambda piece: job._send(("delta", piece)),
                                  cancelled=lambda: job.cancelled)
            except Exception as exc:
                log.exception("generation failed for %s", job.id)
                result = GenerationResult(status="error", error=f"{type(exc).__name__}: {exc}",
                                          prompt_tokens=len(job.prompt_ids), finished=time.time())
        self.completed += 1
        if result.started and result.finished:
            self.avg_job_seconds = 0.8 * self.avg_job_seconds + 0.2 * (result.finished - result.started)
        try:
            job.on_done(job, result)
        except Exception:
            log.exception("usage logging failed for %s", job.id)
        job._send(("done", result))
