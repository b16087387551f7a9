"""Knowledge examples that cover every fact of every chunk: rule-made questions, an optional teacher, a hold-out.

Each sentence that states a fact (a number, a name, a definition, a rule) gets questions of several kinds,
each answered from that chunk, so a trained model learns the middle of a page and not only its opening; the
hold-out asks about facts spread over the corpus in a phrasing the training set does not use for that fact.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tools.data.dedup import example_key, example_text, near_duplicates
from tools.data.formats import normalize_record
from tools.errors import ToolError
from tools.text import normalize_answer

OFFLINE_KINDS = ("factual", "answer_first", "cloze", "paraphrase", "section", "passage")
TEACHER_KIND = "teacher"
DEFAULT_TEACHER_MODEL = "gpt-4o-mini"


class ChunkLike(Protocol):
    """What knowledge generation reads from a chunk (tools.data.chunk.Chunk has these fields)."""

    @property
    def text(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def heading(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def doc_id(self) -> str: ...


@dataclass(frozen=True)
class KnowledgeConfig:
    """Which questions each chunk gets, how they are checked, and how the hold-out is drawn."""

    kinds: tuple[str, ...] = field(default=OFFLINE_KINDS, metadata={
        "help": f"Offline kinds to generate, any of {OFFLINE_KINDS}; passage = recite the whole chunk."})
    max_facts_per_chunk: int = field(default=16, metadata={
        "help": "Fact sentences used per chunk; when a chunk has more, they are spread over all of it."})
    paraphrases_per_fact: int = field(default=1, metadata={
        "help": "Rule-made rephrasings per fact (synonyms, reordered clauses); the hold-out draws from them."})
    section_answer_words: int = field(default=120, metadata={
        "help": "The section question's answer is the chunk's fact sentences, cut near this many words."})
    seed: int = 42
    holdout_share: float = field(default=0.2, metadata={
        "help": "Share of each source's facts that get one hold-out question (at least one per source)."})
    holdout_kinds: tuple[str, ...] = field(default=("paraphrase", TEACHER_KIND), metadata={
        "help": "Kinds a hold-out question may have, in order of preference; its fact trains on the others."})
    support_threshold: float = field(default=0.6, metadata={
        "help": "Share of an answer's content words that must appear in its chunk; below it is rejected."})
    system_prompt: str = field(default="", metadata={"help": "A system turn for every example; empty = none."})
    teacher_pairs_per_chunk: int = field(default=6, metadata={"help": "Question/answer pairs asked per chunk."})
    teacher_replaces: tuple[str, ...] = field(default=("factual", "answer_first", "paraphrase"), metadata={
        "help": "Offline kinds a chunk drops when the teacher answered for it (they come back if it failed)."})
    teacher_concurrency: int = field(default=4, metadata={"help": "Chunks asked at the same time."})
    teacher_retries: int = field(default=2, metadata={
        "help": "Retries per chunk after a timeout, 429/5xx or unusable JSON; then the chunk goes offline."})
    teacher_backoff_s: float = field(default=1.0, metadata={"help": "First retry wait; doubles each retry."})
    teacher_timeout_s: float = field(default=60.0, metadata={"help": "Seconds per teacher request."})

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(OFFLINE_KINDS)
        if unknown:
            raise ToolError(f"Unknown knowledge kinds {sorted(unknown)}; use any of {OFFLINE_KINDS}.")
        if not 0 <= self.holdout_share < 1 or not 0 < self.support_threshold <= 1:
            raise ToolError("KnowledgeConfig needs 0 <= holdout_share < 1 and 0 < support_threshold <= 1.")
        if min(self.max_facts_per_chunk, self.teacher_concurrency, self.teacher_pairs_per_chunk) < 1 \
                or self.paraphrases_per_fact < 0 or self.teacher_retries < 0:
            raise ToolError("KnowledgeConfig counts must be positive (paraphrases and retries may be 0).")


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

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "examples"}
        return {**data, "n_examples": len(self.examples), "samples": self.samples()}


# ---------------------------------------------------------------- facts: which sentences, which span

@dataclass(frozen=True)
class Fact:
    """One fact sentence of a chunk and the span its questions ask about."""

    fact_id: str
    chunk_id: str
    sentence: str
    span_kind: str
    """time, date, money, percent, quantity, name, definition, rule."""
    start: int
    end: int
    """The span sentence[start:end] that questions replace (a preposition included)."""
    value: str
    """The short answer (what a cloze blank holds); the whole sentence for rules."""
    wh: str
    """Fronted question phrase, e.g. `when`, `how many days`, `who`."""
    wh_insitu: str
    """Question phrase left in place, e.g. `at what time`."""


_NUMBER_WORDS = "two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred"
_MONTH = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAY = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DETERMINERS = "the|a|an|our|your|its|their|his|her|my|these|those"
_FUNCTION = "and|the|for|per|are|was|were|who|which|that|than|with|from|more|less|times|or"
_SPANS = (  # (kind, pattern); the first that matches a sentence is its span
    ("money", re.compile(r"(?:\b(?P<prep>of|for|up to|at most|at least|over|under)\s+)?(?P<value>[$€£]\s?\d[\d,]*"
                         r"(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:euros?|dollars?|pounds?|EUR|USD|GBP)\b)")),
    ("time", re.compile(r"(?:\b(?P<prep>at|by|from|until|before|after)\s+)?(?P<value>\b\d{1,2}:\d{2}"
                        r"(?:\s?[ap]\.?m\.?)?|\b\d{1,2}(?:\.\d{2})?\s?[ap]\.?m\.?)")),
    ("percent", re.compile(r"(?P<prep>)(?P<value>\b\d+(?:\.\d+)?\s?(?:%|percent\b))")),
    ("date", re.compile(rf"(?:\b(?P<prep>on|in|by|before|after|until|since|from|every|each)\s+)?"
                        rf"(?P<value>\b(?:(?:{_DAY})s?"
                        rf"|(?:{_MONTH})(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{4}})?"
                        rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTH})(?:\s+\d{{4}})?|(?:19|20)\d{{2}})\b)")),
    ("quantity", re.compile(rf"(?:\b(?P<prep>within|for|after|every|up to|at least|at most|over|under|about)\s+)?"
                            rf"(?P<value>\b(?:\d[\d,]*(?:\.\d+)?|{_NUMBER_WORDS})\s+(?!(?:{_FUNCTION})\b)(?P<unit>[a-z]{{3,}})\b)")),
    ("definition", re.compile(r"^(?P<prep>)(?P<subject>[A-Z][^,;:]{1,60}?)\s+(?P<verb>is|are|means|refers to)\s+"
                              r"(?P<value>(?:a|an|the)\s.{6,})$")),
    ("name", re.compile(r"(?:\b(?P<prep>in|at|near|by|to|from|with)\s+)?(?P<value>(?<![\w'-])"
                        r"(?!(?:The|A|An|This|That|These|If|When|All|Each|Every|It|In|On|Our|I)\b)"
                        r"[A-Z][\w'-]+(?:\s+(?:of\s+)?[A-Z][\w'-]+)*)")),
    ("rule", re.compile(r"(?P<prep>)\b(?P<value>must not|must never|must always|must|should not|should never|"
                        r"should|cannot|may not|never|always|(?:is|are) (?:not )?(?:allowed|required) to)\b")),
)
_NOT_NAMES = {"I", "The", "A", "An", "This", "That", "If", "When", "All", "Each", "Every", "It", "In", "On"}
_PLACE_WORDS = {"office", "street", "road", "hall", "building", "room", "center", "centre", "park", "city",
                "team", "department", "committee", "inc", "ltd", "group", "square", "floor", "lane", "portal",
                "system", "policy", "fund", "plan", "program", "programme", "desk", "club", "library", "app"}
_AUX = {"is", "are", "was", "were", "can", "must", "should", "will", "may", "might", "could", "would",
        "has", "have", "had"}
_AFTER_VERB = {"at", "on", "in", "by", "from", "to", "for", "with", "within", "before", "after", "until",
               "every", "each", "the", "a", "an", "all", "up", "over", "under", "between", "during", "about",
               "their", "its", "his", "her", "our", "your", "no", "only", "two", "three", "four"}
_NOT_VERBS = {"is", "has", "was", "this", "its", "his", "hers", "ours", "yours", "theirs", "us", "as", "thus",
              "always", "sometimes", "plus", "news", "less", "unless", "across", "towards"}
_STOP = {"a", "an", "the", "of", "to", "in", "on", "at", "and", "or", "is", "are", "be", "it", "its", "for",
         "by", "with", "that", "this", "as", "was", "were", "yes", "no", "not", "can", "do", "does", "you"}


def split_sentences(text: str) -> list[str]:
    """Prose sentences of a chunk in order; headings and code skipped, each list item its own sentence.

    A chunk cut from a longer text may open or close mid-sentence; those fragments are left out (the
    neighbouring chunk, which overlaps, holds the whole sentence).
    """
    paragraphs: list[list[str]] = [[]]
    bullets: set[int] = set()
    in_code = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.startswith(("#", "|")) or not line:
            paragraphs.append([])
            continue
        bullet = re.match(r"^(?:[-*•]|\d+[.)])\s+", line)
        if bullet:
            paragraphs.append([line[bullet.end():]])
            paragraphs.append([])
            bullets.add(len(paragraphs) - 2)
        else:
            paragraphs[-1].append(line)
    out: list[str] = []
    last = max((n for n, lines in enumerate(paragraphs) if lines), default=-1)
    for n, lines in enumerate(paragraphs):
        block = " ".join(lines)
        if not out and re.match(r"[a-z]", block):  # the tail of a sentence the previous chunk began
            block = re.split(r"(?<=[.!?])\s+", block, maxsplit=1)[1] if re.search(r"[.!?]\s", block) else ""
        end = max(block.rfind(". "), block.rfind("? "), block.rfind("! "))
        if n == last and n not in bullets and end > 0 and not re.search(r"[.!?:\"')\]]$", block):
            block = block[:end + 1]  # the chunk was cut mid-sentence
        pieces = re.split(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z0-9])", block) if block else []
        for piece in pieces:
            if out and re.search(r"\b(?:e\.g|i\.e|etc|Mr|Ms|Mrs|Dr|St|No|approx)\.$", out[-1]):
                out[-1] += " " + piece  # an abbreviation, not a sentence end
            else:
                out.append(piece.strip())
    return [s for s in out if len(s.split()) >= 4]


def find_fact(sentence: str, fact_id: str = "", chunk_id: str = "") -> Fact | None:
    """The fact a sentence states and the span to ask about, or None for a sentence with no fact."""
    body = sentence.rstrip(".!? ")
    for kind, pattern in _SPANS:
        for match in pattern.finditer(body):
            if kind == "name" and (match.group("value") in _NOT_NAMES or re.fullmatch(
                    rf"(?:{_MONTH}|{_DAY})s?", match.group("value"))):
                continue
            prep = match.group("prep") or ""
            start = match.start("prep") if prep else match.start("value")
            if kind == "name" and start == 0 and " " not in match.group("value"):
                continue  # one capitalised word opening a sentence is as likely a common noun
            determiner = re.search(rf"\b(?:{_DETERMINERS})\s+$", body[:start], re.I)
            rest = body[match.end("value"):]
            if kind == "name" and determiner and re.match(r"\s+[a-z]", rest) \
                    and not (determiner.start() == 0 and re.match(r"\s+[a-z]+s\b", rest)):
                continue  # `the Tidewater portal`: the name only qualifies a noun (`The Portal handles` asks)
            if determiner and kind in ("name", "quantity", "money", "percent"):
                start = determiner.start()  # `of our three sites` → `of how many sites`
            value = match.group("value")
            if kind in ("definition", "rule"):
                wh = "what" if kind == "definition" else "whether"
                return Fact(fact_id, chunk_id, sentence, kind, match.start("value"), match.end("value"), value,
                            wh, wh)
            wh, insitu = _wh_phrase(kind, prep, match)
            return Fact(fact_id, chunk_id, sentence, kind, start, match.end("value"), value, wh, insitu)
    return None


def _wh_phrase(kind: str, prep: str, match: re.Match[str]) -> tuple[str, str]:
    """(fronted, in place) question phrases for a span: `when` / `at what time`, `how many days`, `who` ..."""
    if kind == "time":
        return ("when", "at what time") if prep in ("", "at") else (f"{prep} what time",) * 2
    if kind == "date":
        return ("when",) * 2 if prep in ("", "on", "in", "every", "each") else (f"{prep} when",) * 2
    if kind == "name":
        if prep in ("in", "at", "near"):
            return "where", "where"
        words = match.group("value").split()
        person = len(words) >= 2 and words[-1].lower() not in _PLACE_WORDS
        noun = ("whom" if prep else "who") if person else "what"
        return (f"{prep} {noun}".strip(),) * 2
    phrase = {"money": "how much", "percent": "what percentage"}.get(kind) or f"how many {match.group('unit')}"
    return (f"{prep} {phrase}".strip(),) * 2


# ---------------------------------------------------------------- questions by rule

_PREPOSITIONS = {"at", "on", "in", "by", "from", "to", "for", "with", "within", "before", "after", "until",
                 "during", "between", "over", "under", "if", "when", "once", "while"}
_SYNONYMS = {"opens": "starts", "open": "start", "closes": "shuts", "close": "shut",
             "receive": "get", "receives": "gets", "submit": "hand in",
             "submits": "hands in", "approves": "signs off on", "approve": "sign off on", "requires": "needs",
             "require": "need", "allowed": "permitted", "begins": "starts", "starts": "begins", "ends": "finishes",
             "located": "based", "annual": "yearly", "purchase": "buy", "buy": "purchase", "employees": "staff",
             "staff": "employees", "customers": "clients", "weekdays": "working days", "held": "run",
             "costs": "comes to", "lasts": "runs for", "each": "every", "every": "each", "per": "a"}
_FRAMES = ("Can you tell me {q}?", "Do you know {q}?", "I'd like to know {q}.", "Could you remind me {q}?")


def _lower_first(text: str, context: str) -> str:
    """Lower-case a sentence-initial word unless the chunk also capitalises it mid-sentence (a name)."""
    first = text.split(" ", 1)[0]
    if not first[:1].isupper() or (first.isupper() and len(first) > 1) or first == "I":
        return text
    if re.search(rf"[a-z,;:]\s+{re.escape(first)}\b", context):
        return text
    return first[0].lower() + text[1:]


def _lemma(verb: str) -> str:
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if re.search(r"(?:ss|sh|ch|x|z|o)es$", verb):
        return verb[:-2]
    return verb[:-1]


def _join(*parts: str) -> str:
    return re.sub(r"\s+", " ", " ".join(p for p in parts if p)).strip()


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _parts(fact: Fact) -> tuple[str, str]:
    body = fact.sentence.rstrip(".!? ")
    return body[:fact.start].strip(" ,"), body[fact.end:].strip(" ,")


def _rule_clause(fact: Fact, context: str) -> tuple[str, str]:
    """(subject, verb phrase) of a rule sentence: `Employees must never share badges` → (employees, share badges)."""
    before, after = _parts(fact)
    vp = re.sub(r"^(?:(?:always|never|not|be able to)\s+)+", "", after)
    return (_lower_first(before, context) if before else "one"), vp


def factual_question(fact: Fact, context: str, *, keep_after: bool = True) -> str:
    """A who/what/when/how-many question whose answer is the fact's sentence."""
    before, after = _parts(fact)
    after = after if keep_after else ""
    if fact.span_kind == "rule":
        subject, vp = _rule_clause(fact, context)
        return f"What is the rule on whether {subject} may {vp}?"
    if fact.span_kind == "definition":
        subject, verb = re.match(r"(.+?)\s+(is|are|means|refers to)$", before).groups()  # type: ignore[union-attr]
        subject = _lower_first(subject, context)
        return {"is": f"What is {subject}?", "are": f"What are {subject}?",
                "means": f"What does {subject} mean?"}.get(verb, f"What does {subject} refer to?")
    if not before:  # the span is the subject: replace it
        return _cap(_join(fact.wh, after)) + "?"
    words = before.split()
    if words[0].lower() not in _PREPOSITIONS:
        for i, word in enumerate(words[1:9], start=1):
            if word.lower() in _AUX:  # inversion: `must employees submit`
                subject = _lower_first(" ".join(words[:i]), context)
                return _cap(_join(fact.wh, word.lower(), subject, *words[i + 1:], after)) + "?"
        verb, subject_words = words[-1], words[:-1]
        if 1 <= len(subject_words) <= 8 and verb.isalpha() and verb.islower() and verb not in _NOT_VERBS \
                and verb not in _AFTER_VERB and not verb.endswith(("ed", "ing", "ly")):
            subject = _lower_first(" ".join(subject_words), context)
            if verb.endswith("s") and not verb.endswith(("ss", "us")):
                return _cap(_join(fact.wh, "does", subject, _lemma(verb), after)) + "?"
            if subject_words[-1].endswith("s"):
                return _cap(_join(fact.wh, "do", subject, verb, after)) + "?"
    return _cap(_join(before, fact.wh_insitu, after)) + "?"  # an echo question is always grammatical


def embedded_question(fact: Fact, context: str) -> str:
    """The question as a clause, e.g. `at what time the Riverside office opens on weekdays`."""
    if fact.span_kind == "rule":
        subject, vp = _rule_clause(fact, context)
        return f"whether {subject} may {vp}"
    before, after = _parts(fact)
    if fact.span_kind == "definition":
        return _join("what", _lower_first(before, context))
    return _join(fact.wh_insitu if before else fact.wh, _lower_first(before, context) if before else "", after)


def _swap_synonyms(text: str) -> str:
    return re.sub(r"\b[a-z]+\b", lambda m: _SYNONYMS.get(m.group(0), m.group(0)), text)


def paraphrases(fact: Fact, context: str, n: int, rng: random.Random) -> list[str]:
    """n rephrasings: a clause moved to the front, and question frames with synonyms swapped in."""
    out: list[str] = []
    _, after = _parts(fact)
    if after and after.split()[0].lower() in _PREPOSITIONS and len(after.split()) <= 5 \
            and fact.span_kind not in ("rule", "definition"):
        question = factual_question(fact, context, keep_after=False)
        out.append(f"{_cap(after)}, {_swap_synonyms(question[:1].lower() + question[1:])}")
    clause = _swap_synonyms(embedded_question(fact, context))
    for frame in rng.sample(_FRAMES, len(_FRAMES)):
        out.append(frame.format(q=clause))
    return out[:n]


def cloze(fact: Fact) -> tuple[str, str]:
    """(prompt, answer): the sentence with its value blanked."""
    body = fact.sentence
    at = body.find(fact.value, fact.start)
    return f"Fill in the blank: {body[:at]}____{body[at + len(fact.value):]}", fact.value


# ---------------------------------------------------------------- examples of one chunk

def chunk_id(chunk: ChunkLike) -> str:
    return f"{chunk.doc_id}:{chunk.index}"


def chunk_facts(chunk: ChunkLike, config: KnowledgeConfig) -> list[Fact]:
    """The chunk's fact sentences in order; past the cap, an even spread so the end is covered too."""
    cid = chunk_id(chunk)
    facts = [fact for i, sentence in enumerate(split_sentences(chunk.text))
             if (fact := find_fact(sentence, f"{cid}#{i}", cid)) is not None]
    n = config.max_facts_per_chunk
    return facts if len(facts) <= n else [facts[int((k + 0.5) * len(facts) / n)] for k in range(n)]


def topic(chunk: ChunkLike) -> str:
    """The chunk's own heading (last part of `A > B > C`), else its document title."""
    leaf = chunk.heading.split(">")[-1].strip() if chunk.heading else ""
    return leaf or chunk.title.strip() or "this topic"


def _example(chunk: ChunkLike, config: KnowledgeConfig, kind: str, question: str, answer: str, *,
             fact_id: str | None = None, short: str | None = None, origin: str = "offline") -> dict[str, Any]:
    system = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    cid = chunk_id(chunk)
    return {"messages": [*system, {"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "meta": {"kind": kind, "fact_id": fact_id or f"{cid}#{kind}", "chunk_id": cid, "source": chunk.source,
                     "doc_id": chunk.doc_id, "heading": chunk.heading, "answer": short or answer, "origin": origin}}


def offline_examples(chunk: ChunkLike, facts: list[Fact], config: KnowledgeConfig,
                     kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The rule-made examples of one chunk, deterministic for (seed, chunk)."""
    kinds = set(config.kinds if kinds is None else kinds)
    rng = random.Random(f"{config.seed}:{chunk_id(chunk)}")
    context, out = chunk.text, []
    for fact in facts:
        short = fact.sentence if fact.span_kind == "rule" else fact.value
        question = factual_question(fact, context)

        def add(kind: str, prompt: str, answer: str, fact: Fact = fact, short: str = short) -> None:
            out.append(_example(chunk, config, kind, prompt, answer, fact_id=fact.fact_id, short=short))

        if "factual" in kinds:
            add("factual", question, fact.sentence)
        if "answer_first" in kinds and fact.span_kind not in ("rule", "definition"):
            add("answer_first", f"{question} Give the short answer first.", f"{_cap(fact.value)}. {fact.sentence}")
        if "cloze" in kinds:
            add("cloze", *cloze(fact))
        if "paraphrase" in kinds:
            for phrasing in paraphrases(fact, context, config.paraphrases_per_fact, rng):
                add("paraphrase", phrasing, fact.sentence)
    title = chunk.title.strip() or "the documentation"
    if "section" in kinds:
        lines = [f.sentence for f in facts] or split_sentences(chunk.text)
        answer = ""
        for line in lines:
            if answer and len(answer.split()) + len(line.split()) > config.section_answer_words:
                break
            answer = _join(answer, line)
        if answer:
            out.append(_example(chunk, config, "section", f"What does {title} say about {topic(chunk)}?", answer))
    if "passage" in kinds and chunk.text.strip():
        where = f"the section {topic(chunk)} of {title}" if chunk.heading else title
        out.append(_example(chunk, config, "passage", f"Recite {where}.", chunk.text.strip()))
    return out


def support(answer: str, chunk_text: str) -> float:
    """Share of the answer's content words (all words if it has none) that occur in the chunk."""
    words = normalize_answer(answer).split()
    content = [w for w in words if w not in _STOP] or words
    if not content:
        return 0.0
    vocabulary = set(normalize_answer(chunk_text).split())
    return sum(w in vocabulary for w in content) / len(content)


# ---------------------------------------------------------------- the teacher

TEACHER_SYSTEM = ("You write study questions so that a small model can learn a document by heart. "
                  "You reply with JSON only.")
TEACHER_PROMPT = """Passage from "{title}", section "{heading}":
<<<
{text}
>>>

Write {n} question/answer pairs about this passage.
- Every answer must be stated in the passage or follow directly from it: reuse its wording, numbers and names \
exactly, and add nothing the passage does not say.
- Cover the whole passage, its middle and end as much as its opening.
- Mix the kinds: "factual" (who / what / when / how many), "paraphrased" (a fact asked in other words), \
"inferential" (needs two sentences of the passage together) and "about" ("What does {title} say about ...?").
- Each question must make sense on its own: name its subject; never write "the passage" or "the text".

Reply with one JSON object and nothing else:
{{"pairs": [{{"kind": "factual", "question": "...", "answer": "..."}}]}}"""


def teacher_messages(chunk: ChunkLike, n: int) -> list[dict[str, str]]:
    prompt = TEACHER_PROMPT.format(title=chunk.title.strip() or "the documentation", heading=topic(chunk),
                                   text=chunk.text.strip(), n=n)
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
class _TeacherReply:
    pairs: list[dict[str, str]] | None
    requests: int = 0
    retries: int = 0
    cached: bool = False
    error: str = ""


def _ask_teacher(client: Any, endpoint: TeacherEndpoint, chunk: ChunkLike, config: KnowledgeConfig,
                 cache_dir: Path) -> _TeacherReply:
    """One chunk's pairs: from the cache, else asked with retries; pairs None when every attempt failed."""
    import httpx

    from memory.workspace import atomic_write_text

    messages = teacher_messages(chunk, config.teacher_pairs_per_chunk)
    key = hashlib.sha256(json.dumps([endpoint.model, messages], sort_keys=True).encode()).hexdigest()
    path = cache_dir / f"{key}.json"
    if path.exists():
        try:
            return _TeacherReply(parse_teacher_pairs(path.read_text()), cached=True)
        except ValueError:
            pass  # a damaged cache entry is asked again
    reply = _TeacherReply(None)
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
                cache_dir: Path) -> list[_TeacherReply]:
    """Every chunk's teacher reply, in chunk order, with at most `teacher_concurrency` requests in flight."""
    import httpx

    cache_dir.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    with httpx.Client(timeout=config.teacher_timeout_s, headers=headers) as client, \
            ThreadPoolExecutor(max_workers=config.teacher_concurrency, thread_name_prefix="teacher") as pool:
        return list(pool.map(lambda chunk: _ask_teacher(client, endpoint, chunk, config, cache_dir), chunks))


def teacher_examples(chunk: ChunkLike, facts: list[Fact], pairs: list[dict[str, str]],
                     config: KnowledgeConfig) -> list[dict[str, Any]]:
    """Teacher pairs as examples; each is filed under the fact sentence its answer overlaps most."""
    from tools.text import token_f1

    out = []
    for n, pair in enumerate(pairs):
        scored = [(token_f1(pair["answer"], f.sentence), f.fact_id) for f in facts]
        best = max(scored, default=(0.0, ""))
        fact_id = best[1] if best[0] >= 0.3 else f"{chunk_id(chunk)}#teacher{n}"
        example = _example(chunk, config, TEACHER_KIND, pair["question"], pair["answer"], fact_id=fact_id,
                           origin="teacher")
        example["meta"]["teacher_kind"] = pair["kind"]
        out.append(example)
    return out


# ---------------------------------------------------------------- build, check, estimate

def build_knowledge(chunks: Iterable[ChunkLike], config: KnowledgeConfig | None = None, *,
                    teacher: TeacherEndpoint | None = None, cache_dir: Path | None = None) -> KnowledgeResult:
    """Examples for every fact of every chunk, each checked against its chunk, validated and deduplicated.

    With a teacher, each chunk asks it for pairs that replace `teacher_replaces`; a chunk whose requests all
    fail keeps its offline questions instead (counted as a fallback). cache_dir defaults to
    $INGRAIN_HOME/cache/teacher: a rerun over the same chunks makes no requests.
    """
    config = config or KnowledgeConfig()
    chunks = list(chunks)
    result = KnowledgeResult([], n_chunks=len(chunks))
    facts, seen = [], set()
    for chunk in chunks:  # overlapping chunks repeat sentences: each is asked about in its first chunk only
        facts.append([f for f in chunk_facts(chunk, config) if (chunk.doc_id, f.sentence) not in seen])
        seen.update((chunk.doc_id, f.sentence) for f in facts[-1])
    result.n_facts = sum(map(len, facts))
    result.chunks_without_facts = sum(not f for f in facts)
    replies: list[_TeacherReply | None] = [None] * len(chunks)
    if teacher is not None:
        from memory.workspace import Workspace

        replies = list(ask_teacher(chunks, teacher, config, cache_dir or Workspace.from_env().root / "cache" /
                                   "teacher"))
        failed = [r for r in replies if r and r.pairs is None]
        result.teacher.update(chunks=len(chunks), requests=sum(r.requests for r in replies if r),
                              cached=sum(bool(r and r.cached) for r in replies),
                              retries=sum(r.retries for r in replies if r), fallback_chunks=len(failed))
        if failed:
            result.notes.append(f"The teacher {teacher.model} at {teacher.base_url} failed for {len(failed)} of "
                                f"{len(chunks)} chunks (last error: {failed[-1].error}); they use offline "
                                "questions instead.")
    candidates: list[dict[str, Any]] = []
    for chunk, chunk_facts_, reply in zip(chunks, facts, replies, strict=True):
        answered = reply is not None and reply.pairs is not None
        kinds = [k for k in config.kinds if not (answered and k in config.teacher_replaces)]
        candidates += offline_examples(chunk, chunk_facts_, config, kinds)
        if answered:
            candidates += teacher_examples(chunk, chunk_facts_, reply.pairs, config)  # type: ignore[union-attr]
    texts = {chunk_id(chunk): chunk.text for chunk in chunks}
    result.examples = check_examples(candidates, texts, config, result.rejected)
    result.by_kind = dict(Counter(e["meta"]["kind"] for e in result.examples))
    if result.chunks_without_facts:
        result.notes.append(f"{result.chunks_without_facts} of {len(chunks)} chunks state no fact a rule "
                            "recognises (number, name, definition, rule); they train as section and passage only.")
    return result


def check_examples(candidates: list[dict[str, Any]], chunk_texts: dict[str, str], config: KnowledgeConfig,
                   rejected: dict[str, int]) -> list[dict[str, Any]]:
    """Keep examples whose answer its chunk supports, that validate, and that are not (near-)duplicates.

    Near-duplicates are dropped only within a kind: a fact's factual and paraphrased forms are similar on
    purpose. `rejected` counts unsupported / invalid / duplicate.
    """
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for example in candidates:
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
    pairs = near_duplicates([example_text(e) for e in kept]) if kept else []
    drop = {j for i, j, _ in pairs if kept[i]["meta"]["kind"] == kept[j]["meta"]["kind"]}
    rejected["duplicate"] += len(drop)
    return [e for n, e in enumerate(kept) if n not in drop]


def estimate_examples(chunks: Iterable[ChunkLike], config: KnowledgeConfig | None = None, *,
                      teacher: bool = False) -> int:
    """Examples `build_knowledge` makes: exact offline (the rules are cheap to run); with a teacher an upper
    bound, counting every asked pair as kept."""
    from dataclasses import replace

    config = config or KnowledgeConfig()
    chunks = list(chunks)
    if not teacher:
        return len(build_knowledge(chunks, config).examples)
    kept_kinds = tuple(k for k in config.kinds if k not in config.teacher_replaces)
    return len(build_knowledge(chunks, replace(config, kinds=kept_kinds)).examples) \
        + len(chunks) * config.teacher_pairs_per_chunk


# ---------------------------------------------------------------- the hold-out

@dataclass
class KnowledgeSplit:
    """Training examples and a hold-out of questions about facts that training teaches in other phrasings."""

    train: list[dict[str, Any]]
    holdout: list[dict[str, Any]]
    """One question per held-out fact; `meta.answer` is the fact to look for, `meta.source` its document."""
    dropped: int = 0
    """Training examples removed because they shared the held-out kind or text of a held-out fact."""

    def holdout_by_source(self) -> dict[str, int]:
        return dict(Counter(e["meta"]["source"] for e in self.holdout))


def knowledge_split(examples: Sequence[dict[str, Any]], config: KnowledgeConfig | None = None) -> KnowledgeSplit:
    """Hold out one question of `holdout_share` of each source's facts, evenly spread over the source.

    A held-out fact keeps its other kinds (factual, cloze, section ...) in training but loses every
    training example of the held-out kind, and no training prompt contains the held-out question.
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
        for fact_id, kind in sorted({facts[int((k + 0.5) * len(facts) / n_hold)] for k in range(n_hold)}):
            same_kind = [n for n in by_fact[fact_id] if examples[n]["meta"]["kind"] == kind]
            choice = rng.choice(same_kind)
            held.add(choice)
            removed.update(same_kind)
            question = _user_text(examples[choice])
            removed.update(n for n in by_fact[fact_id] if question in _user_text(examples[n]))
    questions = {_user_text(examples[n]) for n in held}
    removed.update(n for n, e in enumerate(examples) if _user_text(e) in questions)
    train = [e for n, e in enumerate(examples) if n not in removed]
    return KnowledgeSplit(train, [examples[n] for n in sorted(held)], dropped=len(removed - held))


def _user_text(example: dict[str, Any]) -> str:
    return normalize_answer(" ".join(m["content"] for m in example["messages"] if m["role"] == "user"))
