"""build_knowledge: every chunk's examples checked against their chunk and deduplicated; the hold-out split."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from memory.workspace import Workspace
from tools.data.dedup import example_key, example_text, near_duplicates
from tools.data.formats import normalize_record
from tools.data.knowledge.config import CITED_KINDS, RECITATION_KINDS, ChunkLike, KnowledgeConfig, chunk_id
from tools.data.knowledge.facts import Fact, chunk_facts, split_sentences
from tools.data.knowledge.offline import offline_examples
from tools.data.knowledge.questions import cite, document_aliases, support
from tools.data.knowledge.statements import restated_examples
from tools.data.knowledge.teacher import TeacherEndpoint, TeacherReply, ask_teacher, teacher_examples
from tools.progress import Progress
from tools.text import normalize_answer


@dataclass
class KnowledgeResult:
    """The examples built and what happened on the way."""

    examples: list[dict[str, Any]]
    """Chat examples, each with a `meta` dict (kind, fact, chunk, source, answer) that validation ignores."""
    by_kind: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=lambda: {"unsupported": 0, "invalid": 0, "duplicate": 0})
    teacher: dict[str, int] = field(default_factory=lambda: {
        "chunks": 0, "requests": 0, "cached": 0, "retries": 0, "fallback_chunks": 0})
    """requests = HTTP calls made; cached = chunks answered from the cache; fallback_chunks went offline."""
    n_chunks: int = 0
    n_facts: int = 0
    chunks_without_facts: int = 0
    notes: list[str] = field(default_factory=list)

    def samples(self, n: int = 3) -> list[dict[str, Any]]:
        """One example of each kind (up to n kinds), for a trace or a report."""
        seen: dict[str, dict[str, Any]] = {}
        for example in self.examples:
            seen.setdefault(example["meta"]["kind"], example)
        return list(seen.values())[:n]

    def to_dict(self, samples: int = 3) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "examples"}
        return {**data, "n_examples": len(self.examples), "samples": self.samples(samples)}


def build_knowledge(chunks: Iterable[ChunkLike], config: KnowledgeConfig | None = None, *,
                    teacher: TeacherEndpoint | None = None, cache_dir: Path | None = None,
                    progress: Progress | None = None) -> KnowledgeResult:
    """Examples for every fact of every chunk, each checked against its chunk, validated and deduplicated.

    With a teacher, each chunk asks it for pairs (`teacher_pairs_per_fact` per fact the rules find, at least
    `teacher_pairs_per_chunk`) that add to the rule-made ones, or replace `teacher_replaces`; a chunk whose requests all
    fail keeps its offline questions instead (counted as a fallback). cache_dir defaults to
    $INGRAIN_HOME/cache/teacher: a rerun over the same chunks makes no requests.

    `progress(stage, done, total)` follows the stages: "teacher" (chunks answered), "generate" (chunks turned
    into questions) and "check" (candidate examples checked). An interrupted build is run again: the offline
    rules take seconds, and the teacher's cache answers every chunk it already answered.
    """
    config = config or KnowledgeConfig()
    chunks = list(chunks)
    result = KnowledgeResult([], n_chunks=len(chunks))
    facts = facts_by_chunk(chunks, config)
    result.n_facts = sum(map(len, facts))
    result.chunks_without_facts = sum(not f for f in facts)
    replies: list[TeacherReply | None] = [None] * len(chunks)
    if teacher is not None:
        replies = list(ask_teacher(chunks, teacher, config, cache_dir or Workspace.from_env().root / "cache" /
                                   "teacher", n_facts=list(map(len, facts)), progress=progress))
        failed = [r for r in replies if r and r.pairs is None]
        result.teacher.update(chunks=len(chunks), requests=sum(r.requests for r in replies if r),
                              cached=sum(bool(r and r.cached) for r in replies),
                              retries=sum(r.retries for r in replies if r), fallback_chunks=len(failed))
        if failed:
            result.notes.append(f"The teacher {teacher.model} at {teacher.base_url} failed for {len(failed)} of "
                                f"{len(chunks)} chunks (last error: {failed[-1].error}); they use offline "
                                "questions instead.")
    report = progress or (lambda stage, done, total: None)
    report("generate", 0, len(chunks))
    candidates: list[dict[str, Any]] = []
    sentences: dict[str, list[str]] = defaultdict(list)
    for chunk in chunks:
        sentences[chunk.doc_id] += split_sentences(chunk.text)
    aliases = {doc: document_aliases(lines) for doc, lines in sentences.items()}
    for n, (chunk, chunk_facts_, reply) in enumerate(zip(chunks, facts, replies, strict=True), 1):
        answered = reply is not None and reply.pairs is not None
        kinds = [k for k in config.kinds if not (answered and k in config.teacher_replaces)]
        candidates += offline_examples(chunk, chunk_facts_, config, kinds, aliases[chunk.doc_id])
        if "restated" in kinds:
            candidates += restated_examples(chunk, chunk_facts_, config, aliases[chunk.doc_id])
        if answered:
            candidates += teacher_examples(chunk, chunk_facts_, reply.pairs, config)  # type: ignore[union-attr]
        report("generate", n, len(chunks))
    texts = {chunk_id(chunk): chunk.text for chunk in chunks}
    result.examples = check_examples(candidates, texts, config, result.rejected, progress=progress)
    if config.cite_title:  # after the checks: they judge the claim, and the title is the chunk's own
        titles = {chunk_id(chunk): chunk.title.strip() for chunk in chunks}
        for example in result.examples:
            meta, reply = example["meta"], example["messages"][-1]
            if meta["kind"] in CITED_KINDS:
                reply["content"] = cite(reply["content"], titles[meta["chunk_id"]])
    result.by_kind = dict(Counter(e["meta"]["kind"] for e in result.examples))
    if result.chunks_without_facts:
        result.notes.append(f"{result.chunks_without_facts} of {len(chunks)} chunks state no fact a rule "
                            "recognises (number, name, definition, rule); they train as section and passage only.")
    return result


def facts_by_chunk(chunks: Sequence[ChunkLike], config: KnowledgeConfig) -> list[list[Fact]]:
    """Each chunk's facts; overlapping chunks repeat sentences, and each is asked about in its first chunk only."""
    facts: list[list[Fact]] = []
    seen: set[tuple[str, str]] = set()
    for chunk in chunks:
        facts.append([f for f in chunk_facts(chunk, config) if (chunk.doc_id, f.sentence) not in seen])
        seen.update((chunk.doc_id, f.sentence) for f in facts[-1])
    return facts


def check_examples(candidates: list[dict[str, Any]], chunk_texts: dict[str, str], config: KnowledgeConfig,
                   rejected: dict[str, int], *, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Keep examples whose answer its chunk supports, that validate, and that are not (near-)duplicates.

    Near-duplicates are dropped only within a kind: a fact's factual and paraphrased forms are similar on
    purpose. `rejected` counts unsupported / invalid / duplicate; `progress("check", done, total)` follows them.
    """
    report = progress or (lambda stage, done, total: None)
    report("check", 0, len(candidates))
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, example in enumerate(candidates, 1):
        chat = {"messages": example["messages"]}
        if support(example["messages"][-1]["content"], chunk_texts[example["meta"]["chunk_id"]]) \
                < config.support_threshold:
            rejected["unsupported"] += 1
        elif not normalize_record(chat).valid:
            rejected["invalid"] += 1
        elif (key := example_key(chat)) in seen:
            rejected["duplicate"] += 1
        else:
            seen.add(key)
            kept.append(example)
        # Checking support dominates a build's time; a bar that moves every 50 examples is live enough.
        if n % 50 == 0 or n == len(candidates):
            report("check", n, len(candidates))
    pairs = near_duplicates([example_text(e) for e in kept]) if kept else []
    drop = {j for i, j, _ in pairs if kept[i]["meta"]["kind"] == kept[j]["meta"]["kind"]}
    rejected["duplicate"] += len(drop)
    return [e for n, e in enumerate(kept) if n not in drop]


def estimate_examples(chunks: Iterable[ChunkLike], config: KnowledgeConfig | None = None, *,
                      teacher: bool = False) -> int:
    """Examples `build_knowledge` makes: exact offline (the rules are cheap to run); with a teacher an upper
    bound, counting every asked pair as kept."""
    config = config or KnowledgeConfig()
    chunks = list(chunks)
    if not teacher:
        return len(build_knowledge(chunks, config).examples)
    return len(build_knowledge(chunks, offline_config(config, teacher=True)).examples) \
        + sum(teacher_pair_counts(chunks, config))


def offline_config(config: KnowledgeConfig, *, teacher: bool) -> KnowledgeConfig:
    """The config of the rule-made part: with a teacher, without the kinds it replaces."""
    return replace(config, kinds=tuple(k for k in config.kinds if k not in config.teacher_replaces)) if teacher \
        else config


def teacher_pair_counts(chunks: Sequence[ChunkLike], config: KnowledgeConfig) -> list[int]:
    """The pairs a teacher is asked for about each chunk (an upper bound on what it adds: some fail the checks)."""
    return [config.teacher_pairs(len(facts)) for facts in facts_by_chunk(chunks, config)]


# ---------------------------------------------------------------- the hold-out


@dataclass
class KnowledgeSplit:
    """Training examples, validation questions and a hold-out of questions about facts that training teaches in
    other phrasings."""

    train: list[dict[str, Any]]
    holdout: list[dict[str, Any]]
    """One question per held-out fact; `meta.answer` is the fact to look for, `meta.source` its document."""
    dropped: int = 0
    """Training examples removed: those that shared the held-out kind or text of a held-out fact, and those of
    `dropped_for_validation`."""
    val: list[dict[str, Any]] = field(default_factory=list)
    """Questions kept out of training to score checkpoints on: reworded ones whose facts train on other kinds,
    or spare rephrasings."""
    dropped_for_validation: int = 0
    """Of `dropped`: validation facts' other questions of `validation_kind`, so their wording stays unseen."""
    reworded_val: int = 0
    """Of `val`: questions of `validation_kind` (the rest are spare rephrasings)."""

    def holdout_by_source(self) -> dict[str, int]:
        return dict(Counter(e["meta"]["source"] for e in self.holdout))


def _spread(items: Sequence[Any], n: int) -> list[Any]:
    """n of items, evenly spread over them (the middle of each of n equal stretches)."""
    n = min(n, len(items))
    return [items[int((k + 0.5) * len(items) / n)] for k in range(n)] if n else []


def knowledge_split(examples: Sequence[dict[str, Any]], config: KnowledgeConfig | None = None) -> KnowledgeSplit:
    """Hold out one question of `holdout_share` of each source's facts, evenly spread over the source, then
    keep up to `validation_questions` more out of training to score checkpoints on.

    A held-out fact keeps its other kinds (factual, cloze, section ...) in training but loses every
    training example of the held-out kind, and no training prompt contains the held-out question. A
    validation fact (never a held-out one) loses its questions of `validation_kind` the same way, one of them
    validating; the questions are spread over the sources like the hold-out.
    """
    config = config or KnowledgeConfig()
    rng = random.Random(config.seed)
    by_fact: dict[str, list[int]] = defaultdict(list)
    for n, example in enumerate(examples):
        by_fact[example["meta"]["fact_id"]].append(n)
    candidates: dict[str, list[tuple[str, str]]] = defaultdict(list)  # source → (fact, kind), in corpus order
    for fact_id, members in by_fact.items():
        kinds = {examples[n]["meta"]["kind"] for n in members}
        kind = next((k for k in config.holdout_kinds if k in kinds and kinds - {k}), None)
        if kind:
            candidates[examples[members[0]]["meta"]["source"]].append((fact_id, kind))
    held: set[int] = set()
    removed: set[int] = set()
    for facts in candidates.values():
        n_hold = max(1, round(config.holdout_share * len(facts))) if config.holdout_share else 0
        for fact_id, kind in sorted(set(_spread(facts, n_hold))):
            same_kind = [n for n in by_fact[fact_id] if examples[n]["meta"]["kind"] == kind]
            choice = rng.choice(same_kind)
            held.add(choice)
            removed.update(same_kind)
            question = _user_text(examples[choice])
            removed.update(n for n in by_fact[fact_id] if question in _user_text(examples[n]))
    questions = {_user_text(examples[n]) for n in held}
    removed.update(n for n, e in enumerate(examples) if _user_text(e) in questions)
    held_facts = {examples[n]["meta"]["fact_id"] for n in held}
    val, unseen = _validation(examples, {f: m for f, m in by_fact.items() if f not in held_facts}, removed, config,
                              rng)
    removed |= unseen
    train = [e for n, e in enumerate(examples) if n not in removed and n not in val]
    return KnowledgeSplit(train, [examples[n] for n in sorted(held)], dropped=len(removed - held),
                          val=[examples[n] for n in sorted(val)], dropped_for_validation=len(unseen),
                          reworded_val=sum(examples[n]["meta"]["kind"] == config.validation_kind for n in val))


def _validation(examples: Sequence[dict[str, Any]], by_fact: dict[str, list[int]], removed: set[int],
                config: KnowledgeConfig, rng: random.Random) -> tuple[set[int], set[int]]:
    """Up to `validation_questions` examples, one per fact, spread like the hold-out, and the examples they take
    out of training.

    First facts with a question of `validation_kind` and another question kind to train on: one such question
    validates, and the fact's other questions of that kind leave training, so the wording is new to the model
    for that fact. Then, if too few, facts with a rephrasing kind (`holdout_kinds`) of which another example
    stays in training.
    """
    unseen_options: list[list[int]] = []
    options: list[list[int]] = []
    for members in by_fact.values():
        left = [n for n in members if n not in removed]
        kinds = {examples[n]["meta"]["kind"] for n in left} - set(RECITATION_KINDS)
        same_kind = [n for n in left if examples[n]["meta"]["kind"] == config.validation_kind]
        if same_kind and kinds - {config.validation_kind}:
            unseen_options.append(same_kind)
            continue
        for kind in config.holdout_kinds:
            same = [n for n in left if examples[n]["meta"]["kind"] == kind]
            if len(same) >= 2:
                options.append(same)
                break
    unseen = _spread(unseen_options, config.validation_questions)
    chosen = unseen + _spread(options, config.validation_questions - len(unseen))
    val = {rng.choice(same) for same in chosen}
    return val, {n for same in unseen for n in same} - val


def _user_text(example: dict[str, Any]) -> str:
    return normalize_answer(" ".join(m["content"] for m in example["messages"] if m["role"] == "user"))
