"""A chunk's facts restated as text: its fact sentences in another order and other words, as continued text.

Questions tie a fact to the ways it is asked; a fact stored only in its source sentence is found only from
that sentence's opening words ("Laptops are handed out ..."), so a question that starts elsewhere ("Where do new
staff get laptops?") makes the model start a sentence it never saw and fill in some other fact's value. The
same facts in several orders (each sentence next to different neighbours) and forms (the passive turned
active, a thing called by its other name, the sentence opened by another thing it names) give each value more
than one way in.
"""

from __future__ import annotations

import random
import re
from typing import Any

from tools.data.knowledge.config import MAX_RESTATEMENTS, ChunkLike, KnowledgeConfig, chunk_id, knowledge_example
from tools.data.knowledge.facts import Fact, facts_by_sentence
from tools.data.knowledge.grammar import (
    DAYS,
    IRREGULAR,
    MONTHS,
    PREPOSITIONS,
    base_form,
    join,
    lower_first,
    s_verb,
    upper_first,
)
from tools.data.knowledge.questions import (
    active_statement,
    object_phrases,
    subject_phrase,
    with_aliases,
)

_PROMPTS = ("Tell me what {title} says.", "Sum up {title} in a few sentences.", "What are the facts in {title}?",
            "Go over {title} for me.", "Restate {title} in plain words.")
assert len(_PROMPTS) == MAX_RESTATEMENTS
_CLAUSE = {"that", "which", "who", "whose", "where", "when", "and", "or", "but"}
_PARTICIPLES = {active: participle for participle, active in IRREGULAR.items()}
_TIMES = re.compile(rf"\b(?:{MONTHS}|{DAYS}|day|week|month|year|morning|afternoon|evening|night|weekend|weekday)s?\b",
                    re.I)


def _participle(verb: str) -> str:
    """`runs` → `run`, `grants` → `granted`, `approves` → `approved`, `carries` → `carried`."""
    if verb in _PARTICIPLES:
        return _PARTICIPLES[verb]
    stem = base_form(verb)
    if stem.endswith("e"):
        return stem + "d"
    if re.search(r"[^aeiou]y$", stem):
        return stem[:-1] + "ied"
    return stem + "ed"


def _plural(phrase: str) -> bool:
    head = re.split(r"\s+(?:called|named|of)\s+", phrase)[0].split()[-1]
    return head.endswith("s") and not head.endswith(("ss", "us"))


def fronted_statements(sentence: str, values: list[str], context: str) -> dict[str, list[str]]:
    """The sentence restated to open with each other thing it names (object_phrases), thing → forms:

    - an object after an -s verb, by the passive: `Heron runs the nightly tests at 02:10.` → `The nightly tests
      are run by Heron at 02:10.`
    - a place or a time after in/on/at, with what follows it up to the next preposition: `Visitors park in the
      Gull garage on level 4.` → `The Gull garage is where visitors park on level 4.`; a named one is also given
      its name: `The soup of the day is posted on the board called Ladle.` → `The board called Ladle is where the
      soup of the day is posted.`, `The board on which the soup of the day is posted is called Ladle.`

    A question that starts from such a thing (`When do the nightly tests run?`) makes the model start its
    answer there, and the sentence it learned starts elsewhere."""
    words = sentence.rstrip(".!? ").split()
    subject = subject_phrase(sentence, context)
    out: dict[str, list[str]] = {}
    for phrase in object_phrases(sentence, values, context):
        size = len(phrase.split())
        at = next((i for i in range(1, len(words) - size + 1)
                   if " ".join(words[i:i + size]).strip(",;:") == phrase), None)
        if at is None:
            continue
        before, tail = words[at - 1], words[at + size:]
        forms: list[str] = []
        if subject and s_verb(before) and " ".join(words[:at - 1]).lower() == subject.lower():
            be = "are" if _plural(phrase) else "is"
            forms.append(join(upper_first(phrase), be, _participle(before), "by", subject, *tail) + ".")
        elif before.lower() in ("in", "on", "at") and at > 1:
            end = next((j for j, word in enumerate(tail) if word in PREPOSITIONS | _CLAUSE), len(tail))
            thing, rest = join(phrase, *tail[:end]), lower_first(join(*words[:at - 1], *tail[end:]), context)
            be = "are" if _plural(thing) else "is"
            forms.append(join(upper_first(thing), be, "when" if _TIMES.search(thing) else "where", rest) + ".")
            named = re.fullmatch(r"(.+?) (called|named) (\S+)", thing)
            if named and not tail[end:]:
                forms.append(join(upper_first(named.group(1)), before.lower(), "which", rest, be, named.group(2),
                                   named.group(3)) + ".")
        forms = [form for form in forms if all(value in form for value in values)]  # no fact cut in two
        if forms:
            out[phrase] = forms
    return out


def restated_examples(chunk: ChunkLike, facts: list[Fact], config: KnowledgeConfig,
                      aliases: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """`config.restatements` texts of the chunk's fact sentences, each in a new order and with every sentence
    that has another form (active voice, the other name, opened by another thing) in one of them, asked for by
    varied prompts; deterministic for (seed, chunk)."""
    rng = random.Random(f"{config.seed}:{chunk_id(chunk)}:restated")
    stated = {sentence: [f.value for f in its] for sentence, its in facts_by_sentence(facts).items()}
    sentences = list(stated)
    if len(sentences) < 2 or config.restatements <= 0:
        return []
    forms = {s: [s, *filter(None, (active_statement(s, chunk.text), with_aliases(s, aliases or {}))),
                 *(form for fronted in fronted_statements(s, stated[s], chunk.text).values() for form in fronted)]
             for s in sentences}
    title = chunk.title.strip() or "the documentation"
    prompts = rng.sample(_PROMPTS, config.restatements)
    out = []
    for n, prompt in enumerate(prompts):
        order = sentences[:]
        rng.shuffle(order)
        text = " ".join(forms[s][(n + 1) % len(forms[s])] for s in order)
        out.append(knowledge_example(chunk, config, "restated", prompt.format(title=title), text))
    return out
