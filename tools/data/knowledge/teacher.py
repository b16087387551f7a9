"""The optional teacher: an OpenAI-compatible endpoint asked for question/answer pairs per chunk, cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memory.workspace import atomic_write_text
from tools.data.knowledge.config import (
    DEFAULT_TEACHER_MODEL,
    TEACHER_KIND,
    ChunkLike,
    KnowledgeConfig,
    chunk_id,
    knowledge_example,
    topic,
)
from tools.data.knowledge.facts import Fact
from tools.progress import Progress
from tools.text import token_f1


@dataclass(frozen=True)
class TeacherEndpoint:
    """An OpenAI-compatible endpoint that writes question/answer pairs."""

    base_url: str
    api_key: str = "not-needed"
    model: str = DEFAULT_TEACHER_MODEL

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TeacherEndpoint | None:
        """INGRAIN_TEACHER_BASE_URL / _API_KEY / _MODEL, else OPENAI_BASE_URL / OPENAI_API_KEY; None if unset."""
        env = dict(os.environ) if env is None else env
        url = env.get("INGRAIN_TEACHER_BASE_URL") or env.get("OPENAI_BASE_URL")
        key = env.get("INGRAIN_TEACHER_API_KEY") or env.get("OPENAI_API_KEY")
        if not url and not key:
            return None
        return cls(base_url=(url or "https://api.openai.com/v1").rstrip("/"), api_key=key or "not-needed",
                   model=env.get("INGRAIN_TEACHER_MODEL") or DEFAULT_TEACHER_MODEL)


TEACHER_SYSTEM = ("You write study questions so that a small model can learn a document by heart. "
                  "You reply with JSON only.")
TEACHER_PROMPT = """Passage from "{title}", section "{heading}":
<<<
{text}
>>>

Write {n} question/answer pairs about this passage.
- Every answer must be stated in the passage or follow directly from it: reuse its wording, numbers and names \
exactly, and add nothing the passage does not say.
- Cover the whole passage, its middle and end as much as its opening: ask about every fact it states \
{per_fact} times, each time in other words (another verb, another order, the fact's subject named differently).
- Mix the kinds: "factual" (who / what / when / how many), "paraphrased" (a fact asked in other words), \
"inferential" (needs two sentences of the passage together) and "about" ("What does {title} say about ...?").
- Each question must make sense on its own: name its subject; never write "the passage" or "the text".

Reply with one JSON object and nothing else:
{{"pairs": [{{"kind": "factual", "question": "...", "answer": "..."}}]}}"""


def teacher_messages(chunk: ChunkLike, n: int, per_fact: int = 1) -> list[dict[str, str]]:
    prompt = TEACHER_PROMPT.format(title=chunk.title.strip() or "the documentation", heading=topic(chunk),
                                   text=chunk.text.strip(), n=n, per_fact=per_fact)
    return [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": prompt}]


def parse_teacher_pairs(text: str) -> list[dict[str, str]]:
    """The {kind, question, answer} pairs in a teacher reply; ValueError when it holds none."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON in the reply")
    data, _ = json.JSONDecoder().raw_decode(text[min(starts):])
    items = data.get("pairs") if isinstance(data, dict) else data
    pairs = [{"kind": str(item.get("kind") or "factual"), "question": item["question"].strip(),
              "answer": item["answer"].strip()}
             for item in items or [] if isinstance(item, dict)
             and isinstance(item.get("question"), str) and isinstance(item.get("answer"), str)
             and item["question"].strip() and item["answer"].strip()]
    if not pairs:
        raise ValueError("the JSON holds no question/answer pairs")
    return pairs


@dataclass
class TeacherReply:
    """One chunk's teacher answer: its pairs (None when every attempt failed) and what it cost."""

    pairs: list[dict[str, str]] | None
    requests: int = 0
    retries: int = 0
    cached: bool = False
    error: str = ""


def _ask_teacher(client: Any, endpoint: TeacherEndpoint, chunk: ChunkLike, n_facts: int, config: KnowledgeConfig,
                 cache_dir: Path) -> TeacherReply:
    """One chunk's pairs: from the cache, else asked with retries; pairs None when every attempt failed."""
    import httpx

    messages = teacher_messages(chunk, config.teacher_pairs(n_facts), config.teacher_pairs_per_fact)
    key = hashlib.sha256(json.dumps([endpoint.model, messages], sort_keys=True).encode()).hexdigest()
    path = cache_dir / f"{key}.json"
    if path.exists():
        try:
            return TeacherReply(parse_teacher_pairs(path.read_text()), cached=True)
        except ValueError:
            pass  # a damaged cache entry is asked again
    reply = TeacherReply(None)
    for attempt in range(config.teacher_retries + 1):
        if attempt:
            reply.retries += 1
            time.sleep(config.teacher_backoff_s * 2 ** (attempt - 1))
        reply.requests += 1
        try:
            response = client.post(f"{endpoint.base_url}/chat/completions", json={
                "model": endpoint.model, "messages": messages, "temperature": 0.3})
        except httpx.HTTPError as err:  # timeouts and refused connections are worth another try
            reply.error = f"{type(err).__name__}: {err}"
            continue
        if response.status_code >= 400:
            reply.error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code in (408, 429) or response.status_code >= 500:
                continue
            break  # a wrong key or model name does not get better by asking again
        try:
            content = response.json()["choices"][0]["message"]["content"]
            reply.pairs = parse_teacher_pairs(content)
        except (ValueError, KeyError, IndexError, TypeError) as err:
            reply.error = f"unusable reply ({err}): {response.text[:120]!r}"
            continue
        atomic_write_text(path, content)
        return reply
    return reply


def ask_teacher(chunks: Sequence[ChunkLike], endpoint: TeacherEndpoint, config: KnowledgeConfig,
                cache_dir: Path, *, n_facts: Sequence[int] | None = None, progress: Progress | None = None
                ) -> list[TeacherReply]:
    """Every chunk's teacher reply, in chunk order, with at most `teacher_concurrency` requests in flight.

    A chunk is asked for `config.teacher_pairs(n)` pairs, n being its count in `n_facts` (the facts the
    rules found in it; none given = the per-chunk minimum).

    `progress("teacher", done, total)` counts chunks answered (cached, asked or given up on), from the worker
    threads. Each reply is cached as it arrives, so a run interrupted halfway asks only for the rest.
    """
    import httpx

    cache_dir.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    report = progress or (lambda stage, done, total: None)
    lock, done = threading.Lock(), [0]

    counts = list(n_facts) if n_facts is not None else [0] * len(chunks)
    if len(counts) != len(chunks):
        raise ValueError(f"n_facts has {len(counts)} counts for {len(chunks)} chunks")

    def ask(chunk: ChunkLike, facts: int) -> TeacherReply:
        reply = _ask_teacher(client, endpoint, chunk, facts, config, cache_dir)
        with lock:
            done[0] += 1
            report("teacher", done[0], len(chunks))
        return reply

    report("teacher", 0, len(chunks))
    with httpx.Client(timeout=config.teacher_timeout_s, headers=headers) as client:
        pool = ThreadPoolExecutor(max_workers=config.teacher_concurrency, thread_name_prefix="teacher")
        try:
            return list(pool.map(ask, chunks, counts))
        finally:
            # On Ctrl-C the chunks still queued are dropped: only the requests in flight finish (and are cached).
            pool.shutdown(wait=True, cancel_futures=True)


def teacher_examples(chunk: ChunkLike, facts: list[Fact], pairs: list[dict[str, str]],
                     config: KnowledgeConfig) -> list[dict[str, Any]]:
    """Teacher pairs as examples; each is filed under the fact sentence its answer overlaps most."""
    out = []
    for n, pair in enumerate(pairs):
        scored = [(token_f1(pair["answer"], f.sentence), f.fact_id) for f in facts]
        best = max(scored, default=(0.0, ""))
        fact_id = best[1] if best[0] >= 0.3 else f"{chunk_id(chunk)}#teacher{n}"
        example = knowledge_example(chunk, config, TEACHER_KIND, pair["question"], pair["answer"], fact_id=fact_id,
                           origin="teacher")
        example["meta"]["teacher_kind"] = pair["kind"]
        out.append(example)
    return out
