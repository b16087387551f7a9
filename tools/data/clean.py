"""Cleaning documents and chunks: Unicode and whitespace, PII, language, a quality score, exact and near duplicates."""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace

from tools.data.dedup import NEAR_DUPLICATE_JACCARD, near_duplicates
from tools.data.extract import Document, make_document
from tools.data.pii import scrub_pii
from tools.errors import ToolError

_INVISIBLE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")  # soft hyphen, zero-width spaces and joiners, BOM
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BOILERPLATE = re.compile(
    r"cookie|all rights reserved|privacy (policy|notice)|terms (of|and) (use|service|conditions)|subscribe|"
    r"sign (in|up)|log ?in\b|skip to (main )?content|enable javascript|share (this|on)|back to top|©|copyright",
    re.IGNORECASE)


@dataclass(frozen=True)
class CleanConfig:
    """What `clean_documents` keeps."""

    min_words: int = field(default=8, metadata={"help": "fewer words than this: too short to learn from"})
    min_quality: float = field(default=0.5, metadata={"help": "drop below this quality score (0-1; prose ~1, "
                                                               "menus, number tables and code dumps lower)"})
    languages: tuple[str, ...] = field(default=(), metadata={
        "help": "ISO 639-1 codes to keep (e.g. ('en',)); empty keeps every language; undetected text is kept"})
    near_duplicate_threshold: float = field(default=NEAR_DUPLICATE_JACCARD, metadata={
        "help": "word-3-gram Jaccard at or above which a later text is a near duplicate of an earlier one"})
    pii: bool = field(default=True, metadata={"help": "mask emails, phone numbers and long digit runs"})

    def __post_init__(self) -> None:
        if not 0 <= self.min_quality <= 1 or not 0 < self.near_duplicate_threshold <= 1:
            raise ToolError("CleanConfig: min_quality must be in [0, 1] and near_duplicate_threshold in (0, 1].")
        if self.min_words < 0:
            raise ToolError("CleanConfig: min_words cannot be negative.")


@dataclass
class Quality:
    """Cheap signals of whether a text is prose worth learning from."""

    alpha_ratio: float
    """Letters among the non-space characters (prose ~0.8; tables of numbers, hashes, markup lower)."""
    mean_line_words: float
    """Words per non-empty line (menus and link lists have one or two)."""
    boilerplate_ratio: float
    """Share of lines that read like site furniture (cookies, copyright, sign in, share ...)."""
    score: float
    """min(1, alpha/0.6) x min(1, words per line/3) x (1 - boilerplate): 1 for plain prose."""


CLEAN_REASONS = {
    "too_short": "too short to learn from",
    "low_quality": "not prose (menus, number tables, code dumps, site furniture)",
    "language": "not in a language asked for",
    "duplicate": "the same text as a document kept",
    "near_duplicate": "nearly the same text as a document kept",
}
"""Why `clean_documents` drops a document; the keys are what it counts it under."""


@dataclass
class Cleaned:
    """What `clean_documents` kept and what it dropped, by reason."""

    documents: list[Document]
    dropped: dict[str, int] = field(default_factory=dict)
    """reason (a CLEAN_REASONS key) → how many."""
    languages: dict[str, int] = field(default_factory=dict)
    """Detected language → kept documents."""


def normalize_text(text: str) -> str:
    """NFKC, no invisible or control characters, one space between words, at most one blank line in a row.

    Leading indentation is kept: code blocks and reStructuredText depend on it.
    """
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", _INVISIBLE.sub("", text)).replace("\t", "    ")
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        lines.append(line[: len(line) - len(body)] + re.sub(r" {2,}", " ", body).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def clean_text(text: str, *, pii: bool = True) -> str:
    """`normalize_text`, then PII masked with the one shared pattern set."""
    text = normalize_text(text)
    return scrub_pii(text) if pii else text


@functools.cache
def _identifier() -> object:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str, min_confidence: float = 0.5) -> str:
    """The ISO 639-1 code of the text's language (offline, py3langid), or "" when unsure."""
    sample = text[:5000]
    if len(re.findall(r"[^\W\d_]{2,}", sample)) < 3:
        return ""
    language, confidence = _identifier().classify(sample)  # type: ignore[attr-defined]
    return language if confidence >= min_confidence else ""


def quality(text: str) -> Quality:
    """The quality signals and score of a text."""
    lines = [line for line in text.splitlines() if line.strip()]
    visible = "".join(text.split())
    if not lines or not visible:
        return Quality(0.0, 0.0, 0.0, 0.0)
    alpha = sum(c.isalpha() for c in visible) / len(visible)
    mean_words = sum(len(line.split()) for line in lines) / len(lines)
    boilerplate = sum(bool(_BOILERPLATE.search(line)) and len(line.split()) < 15 for line in lines) / len(lines)
    score = min(1.0, alpha / 0.6) * min(1.0, mean_words / 3) * (1 - boilerplate)
    return Quality(round(alpha, 3), round(mean_words, 2), round(boilerplate, 3), round(score, 3))


def drop_reason(text: str, config: CleanConfig, language: str = "") -> str | None:
    """Why one cleaned text is dropped on its own (too_short, low_quality, language), or None to keep it."""
    if len(text.split()) < config.min_words:
        return "too_short"
    if quality(text).score < config.min_quality:
        return "low_quality"
    if config.languages and language and language not in config.languages:
        return "language"
    return None


def duplicate_reasons(texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> list[str | None]:
    """Per text, "duplicate" (same words as an earlier text), "near_duplicate" or None for the first of its kind."""
    reasons: list[str | None] = [None] * len(texts)
    seen: set[str] = set()
    firsts = []
    for i, text in enumerate(texts):
        key = hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()
        if key in seen:
            reasons[i] = "duplicate"
        else:
            seen.add(key)
            firsts.append(i)
    for _, later, _ in near_duplicates([texts[i] for i in firsts], threshold):
        reasons[firsts[later]] = "near_duplicate"
    return reasons


def clean_documents(documents: list[Document], config: CleanConfig | None = None) -> Cleaned:
    """Normalise and scrub every document, then drop the short, poor, unwanted-language and duplicate ones."""
    config = config or CleanConfig()
    dropped: Counter[str] = Counter()
    candidates = []
    for doc in documents:
        text = clean_text(doc.text, pii=config.pii)
        language = detect_language(text)
        reason = drop_reason(text, config, language)
        if reason:
            dropped[reason] += 1
        else:
            candidates.append(replace(make_document(doc.title, text, doc.source, doc.modified, language),
                                      title=clean_text(doc.title, pii=config.pii)))
    kept = []
    for doc, reason in zip(candidates, duplicate_reasons([d.text for d in candidates],
                                                         config.near_duplicate_threshold), strict=True):
        if reason:
            dropped[reason] += 1
        else:
            kept.append(doc)
    return Cleaned(kept, dict(dropped), dict(Counter(d.language or "unknown" for d in kept)))
