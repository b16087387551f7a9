"""Words and word forms the knowledge rules share: month and day names, determiners, prepositions, verb forms,
and the small helpers that join, capitalise and inflect the words of a question or a restated sentence."""

from __future__ import annotations

import re

MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
DETERMINER_WORDS = "the|a|an|our|your|its|their|his|her|my|these|those"
NOT_NAMES = {"I", "The", "A", "An", "This", "That", "If", "When", "All", "Each", "Every", "It", "In", "On"}
PREPOSITIONS = {"at", "on", "in", "by", "from", "to", "for", "with", "within", "before", "after", "until",
                "during", "between", "over", "under", "if", "when", "once", "while"}
IRREGULAR = {"run": "runs", "led": "leads", "held": "holds", "kept": "keeps", "paid": "pays", "made": "makes",
             "given": "gives", "written": "writes", "sent": "sends", "built": "builds", "done": "does", "set": "sets",
             "read": "reads", "taught": "teaches", "bought": "buys", "sold": "sells", "told": "tells",
             "shown": "shows", "known": "knows", "brought": "brings", "chosen": "chooses", "taken": "takes"}
OPENERS = set(DETERMINER_WORDS.split("|"))
"""Determiners that open a phrase (`The Pelham company`, `Our Berlin office`): not the first word of a name."""
NOT_VERBS = {"is", "has", "was", "this", "its", "his", "hers", "ours", "yours", "theirs", "us", "as", "thus",
             "always", "sometimes", "plus", "news", "less", "unless", "across", "towards"}


def lower_first(text: str, context: str) -> str:
    """Lower-case a sentence-initial word unless the chunk also capitalises it mid-sentence (a name)."""
    first = text.split(" ", 1)[0]
    if not first[:1].isupper() or (first.isupper() and len(first) > 1) or first == "I":
        return text
    if first not in NOT_NAMES and first.lower() not in OPENERS and re.match(r"[A-Z][\w'-]*\s+[A-Z]", text):
        return text  # a full name: `Greta Lindqvist manages ...`
    if re.search(rf"[a-z,;:]\s+{re.escape(first)}\b", context):
        return text
    return first[0].lower() + text[1:]


def base_form(verb: str) -> str:
    """The plain form of an -s verb: `applies` → `apply`, `closes` → `close`, `runs` → `run`."""
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if re.search(r"(?:ss|sh|ch|x|z|o)es$", verb):
        return verb[:-2]
    return verb[:-1]


def join(*parts: str) -> str:
    """The non-empty parts joined by single spaces."""
    return re.sub(r"\s+", " ", " ".join(p for p in parts if p)).strip()


def upper_first(text: str) -> str:
    """The text with its first letter capitalised, the rest as it was."""
    return text[:1].upper() + text[1:]


def s_verb(word: str) -> bool:
    """True for a lower-case word that may be a verb with its third-person -s (`runs`, not `class` or `this`)."""
    return word.isalpha() and word.islower() and word.endswith("s") and not word.endswith(("ss", "us")) \
        and word not in NOT_VERBS
