"""Which sentences of a chunk state a fact, and which span of each its questions ask about."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from tools.data.knowledge.config import ChunkLike, KnowledgeConfig, chunk_id
from tools.data.knowledge.grammar import DAYS, DETERMINER_WORDS, MONTHS, NOT_NAMES


@dataclass(frozen=True)
class Fact:
    """One fact sentence of a chunk and the span its questions ask about."""

    fact_id: str
    chunk_id: str
    sentence: str
    span_kind: str
    """time, date, money, percent, quantity, label, name, definition, rule."""
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
_FUNCTION = "and|the|for|per|are|was|were|who|which|that|than|with|from|more|less|times|or"
_SPANS = (  # (kind, pattern), likeliest first; a sentence's facts are its non-overlapping matches
    ("money", re.compile(r"(?:\b(?P<prep>of|for|up to|at most|at least|over|under|above|below)\s+)?"
                         r"(?P<value>[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:euros?|dollars?|pounds?|EUR|USD|GBP)\b)")),
    ("time", re.compile(r"(?:\b(?P<prep>at|by|from|until|before|after)\s+)?(?P<value>\b\d{1,2}:\d{2}"
                        r"(?:\s?[ap]\.?m\.?)?|\b\d{1,2}(?:\.\d{2})?\s?[ap]\.?m\.?)")),
    ("percent", re.compile(r"(?P<prep>)(?P<value>\b\d+(?:\.\d+)?\s?(?:%|percent\b))")),
    ("date", re.compile(rf"(?:\b(?P<prep>on|in|by|before|after|until|since|from|every|each)\s+)?"
                        rf"(?P<value>\b(?:(?:{DAYS})s?"
                        rf"|(?:{MONTHS})(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{4}})?"
                        rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})(?:\s+\d{{4}})?|(?:19|20)\d{{2}})\b)")),
    ("quantity", re.compile(rf"(?:\b(?P<prep>within|for|after|every|up to|at least|at most|over|under|about)\s+)?"
                            rf"(?P<value>\b(?:\d[\d,]*(?:\.\d+)?|{_NUMBER_WORDS})\s+(?!(?:{_FUNCTION})\b)"
                            rf"(?P<unit>[a-z]{{3,}}|[A-Z]{{2,5}}\s+[a-z]{{3,}})\b)")),
    ("label", re.compile(rf"\b(?P<prep>on|in|at|from|to|by|via|through)\s+\b(?P<unit>(?!(?:{_FUNCTION})\b)"
                         r"[a-z]{3,})\s+(?P<value>[A-Z]{0,3}-?\d+[A-Za-z]?)\b(?![:.,]\d)")),
    ("definition", re.compile(r"^(?P<prep>)(?P<subject>[A-Z][^,;:]{1,60}?)\s+(?P<verb>is|are|means|refers to)\s+"
                              r"(?P<value>(?:a|an|the)\s.{6,})$")),
    ("name", re.compile(r"(?:\b(?P<prep>in|at|near|by|to|from|with)\s+)?(?P<value>(?<![\w'-])"
                        r"(?!(?:The|A|An|This|That|These|If|When|All|Each|Every|It|In|On|Our|I)\b)"
                        r"[A-Z][\w'-]+(?:\s+(?:of\s+)?[A-Z][\w'-]+)*)")),
    ("name", re.compile(r"(?P<prep>)(?:(?<=\bcalled )|(?<=\bnamed ))"  # not `named after rivers`
                        r"(?P<value>(?!(?:after|for|by|as|in|on|at|to|from|with|the|a|an)\b)[a-z][\w-]*[a-z0-9])\b")),
    ("rule", re.compile(r"(?P<prep>)\b(?P<value>must not|must never|must always|must|should not|should never|"
                        r"should|cannot|may not|never|always|(?:is|are) (?:not )?(?:allowed|required) to)\b")),
)
_OF_STOPS = {"at", "on", "in", "by", "from", "to", "for", "with", "within", "before", "after", "until", "during",
             "is", "are", "was", "were", "be", "can", "must", "may", "will", "should", "has", "have", "and", "or",
             "per", "each", "every", "than", "that", "which", "who", "the", "a", "an", "their", "its", "our"}
"""Words that end an of-phrase: `16 weeks of leave per year` asks `how many weeks of leave`."""

_PLACE_WORDS = {"office", "street", "road", "hall", "building", "room", "center", "centre", "park", "city",
                "team", "department", "committee", "inc", "ltd", "group", "square", "floor", "lane", "portal",
                "system", "policy", "fund", "plan", "program", "programme", "desk", "club", "library", "app"}


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
    """The first fact a sentence states and the span to ask about, or None for a sentence with no fact."""
    facts = find_facts(sentence, fact_id, chunk_id)
    return facts[0] if facts else None


def find_facts(sentence: str, fact_id: str = "", chunk_id: str = "", limit: int = 3) -> list[Fact]:
    """Every span of a sentence a question can ask about, the likeliest kind first, up to `limit`.

    `Visitors park in the Gull garage on level 4` holds two facts (where, which level): a question about
    either must be answerable, so each gets questions of its own. A definition or rule is the sentence's
    fact only when nothing narrower is; the first fact keeps `fact_id`, the others get `.1`, `.2` ...
    """
    body = sentence.rstrip(".!? ")
    spans: list[Fact] = []
    for kind, pattern in _SPANS:
        if kind in ("definition", "rule") and spans:
            continue
        for match in pattern.finditer(body):
            fact = _span_fact(sentence, body, kind, match, fact_id, chunk_id)
            if fact and not any(fact.start < f.end and f.start < fact.end for f in spans):
                spans.append(fact)
    return [replace(f, fact_id=f"{fact_id}.{n}" if n else fact_id) for n, f in enumerate(spans[:limit])]


def _span_fact(sentence: str, body: str, kind: str, match: re.Match[str], fact_id: str,
               chunk_id: str) -> Fact | None:
    """The fact one pattern match states, or None when the match only looks like one."""
    if kind == "name" and (match.group("value") in NOT_NAMES or re.fullmatch(
            rf"(?:{MONTHS}|{DAYS})s?", match.group("value"))):
        return None
    prep = match.group("prep") or ""
    start = match.start("prep") if prep else match.start("value")
    if kind == "name" and start == 0 and " " not in match.group("value"):
        return None  # one capitalised word opening a sentence is as likely a common noun
    determiner = re.search(rf"\b(?:{DETERMINER_WORDS})\s+$", body[:start], re.I)
    rest = body[match.end("value"):]
    if kind == "date" and re.search(r"\b(?:first|second|third|fourth|last)\s+$", body[:start]):
        return None  # `the second Tuesday of March`: the month is asked, not an ordinal's weekday
    called = re.search(r"(?:\b(?P<lead>in|at|on|by|to|from|with|near|of)\s+)?\b(?:the|a|an)\s+(?P<noun>[a-z]{3,})\s+"
                       r"(?:called|named)\s+$", body[:start]) if kind == "name" else None
    if called:  # `on the board called Ladle`: asked as `on which board`
        wh = f"{called.group('lead') or ''} which {called.group('noun')}".strip()
        return Fact(fact_id, chunk_id, sentence, kind, called.start(), match.end("value"), match.group("value"),
                    wh, wh)
    if kind == "name" and determiner and re.match(r"\s+[a-z]", rest) \
            and not (determiner.start() == 0 and re.match(r"\s+[a-z]+s\b", rest)):
        # `by the Pelham company`: the name qualifies a noun, so the question asks `by which company`
        noun = re.match(r"\s+([a-z]{3,})\b", rest)
        if not noun:
            return None
        lead = re.search(r"\b(in|at|on|by|to|from|with|near|of)\s+$", body[:determiner.start()])
        wh = f"{lead.group(1) if lead else ''} which {noun.group(1)}".strip()
        return Fact(fact_id, chunk_id, sentence, kind, lead.start() if lead else determiner.start(),
                    match.end("value") + noun.end(), match.group("value"), wh, wh)
    if determiner and kind in ("name", "quantity", "money", "percent"):
        start = determiner.start()  # `of our three sites` → `of how many sites`
    value = match.group("value")
    of = _of_phrase(rest) if kind == "quantity" else None
    if of:  # `16 weeks of paid parental leave` is asked as `how many weeks of paid parental leave`, whole
        wh, insitu = _wh_phrase(kind, prep, match)
        return Fact(fact_id, chunk_id, sentence, kind, start, match.end("value") + len(of), value,
                    f"{wh}{of}", f"{insitu}{of}")
    if kind in ("definition", "rule"):
        wh = "what" if kind == "definition" else "whether"
        return Fact(fact_id, chunk_id, sentence, kind, match.start("value"), match.end("value"), value, wh, wh)
    wh, insitu = _wh_phrase(kind, prep, match)
    return Fact(fact_id, chunk_id, sentence, kind, start, match.end("value"), value, wh, insitu)


def _of_phrase(rest: str) -> str:
    """The ` of paid parental leave` that follows a quantity: up to four plain lower-case words, ending before a
    preposition, verb or determiner; "" when none follows."""
    head = re.match(r"\s+of\s+", rest)
    if not head:
        return ""
    words = []
    for word in rest[head.end():].split(" "):
        if len(words) == 4 or not re.fullmatch(r"[a-z][a-z-]*", word) or word in _OF_STOPS:
            break
        words.append(word)
    return f" of {' '.join(words)}" if words else ""


def _wh_phrase(kind: str, prep: str, match: re.Match[str]) -> tuple[str, str]:
    """(fronted, in place) question phrases for a span: `when` / `at what time`, `how many days`, `who` ..."""
    if kind == "time":
        return ("when", "at what time") if prep in ("", "at") else (f"{prep} what time",) * 2
    if kind == "date":
        if re.fullmatch(MONTHS, match.group("value")):  # `in March` → `in which month`
            return f"{prep or 'in'} which month", f"{prep} which month".strip()
        return ("when",) * 2 if prep in ("", "on", "in", "every", "each") else (f"{prep} when",) * 2
    if kind == "name":
        if prep in ("in", "at", "near"):
            return "where", "where"
        words = match.group("value").split()
        person = len(words) >= 2 and words[-1].lower() not in _PLACE_WORDS
        noun = ("whom" if prep else "who") if person else "what"
        return (f"{prep} {noun}".strip(),) * 2
    if kind == "label":  # `on floor 3` → `on which floor`
        return (f"{prep} which {match.group('unit')}".strip(),) * 2
    phrase = {"money": "how much", "percent": "what percentage"}.get(kind) or f"how many {match.group('unit')}"
    return (f"{prep} {phrase}".strip(),) * 2


def facts_by_sentence(facts: Iterable[Fact]) -> dict[str, list[Fact]]:
    """Facts grouped by the sentence that states them, sentences in order: one sentence may state three."""
    grouped: dict[str, list[Fact]] = {}
    for fact in facts:
        grouped.setdefault(fact.sentence, []).append(fact)
    return grouped


def chunk_facts(chunk: ChunkLike, config: KnowledgeConfig) -> list[Fact]:
    """The chunk's fact sentences in order; past the cap, an even spread so the end is covered too."""
    cid = chunk_id(chunk)
    facts = [fact for i, sentence in enumerate(split_sentences(chunk.text))
             for fact in find_facts(sentence, f"{cid}#{i}", cid)]
    n = config.max_facts_per_chunk
    return facts if len(facts) <= n else [facts[int((k + 0.5) * len(facts) / n)] for k in range(n)]
