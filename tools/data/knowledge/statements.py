"""A chunk's facts restated as text: its fact sentences in another order and other words, as continued text.

Questions tie a fact to the ways it is asked; a fact stored only in its source sentence is found only from
that sentence's opening words ("Laptops are handed out ..."), so a question that starts elsewhere ("Where do new
staff get laptops?") makes the model start a sentence it never saw and fill in some other fact's value. The
same facts in several orders (each sentence next to different neighbours) and forms (the passive turned
active, a thing called by its other name) give each value more than one way in.
"""

from __future__ import annotations

import random
import re
from typing import Any

from tools.data.knowledge.config import ChunkLike, KnowledgeConfig, chunk_id, knowledge_example
from tools.data.knowledge.facts import Fact
from tools.data.knowledge.questions import _active_verb, _cap, _lower_first

_PASSIVE = re.compile(r"^(?P<subject>.+?)\s+(?P<aux>is|are)\s+(?P<verb>[a-z]+)\s+by\s+(?P<agent>[^,;]+?)[.!]?$")
_PROMPTS = ("Tell me what {title} says.", "Sum up {title} in a few sentences.", "What are the facts in {title}?",
            "Go over {title} for me.", "Restate {title} in plain words.")


def active_statement(sentence: str, context: str) -> str | None:
    """`The office kitchen is cleaned by the Pelham company.` → `The Pelham company cleans the office kitchen.`;
    None when the sentence is not a present-tense passive with its agent at the end."""
    passive = _PASSIVE.match(sentence.strip())
    if not passive or passive.group("verb") in ("called", "named", "known"):
        return None
    verb = _active_verb(passive.group("verb"))
    if not verb:
        return None
    agent = passive.group("agent")
    if not re.match(r"(?:the|a|an)\s|[A-Z]", agent):
        return None  # `by hand`, `by default`: not an agent
    if re.search(r"\band\b", agent):  # two agents take the plural: `Alice and Bob approve`
        verb = verb[:-3] + "y" if verb.endswith("ies") else re.sub(r"(?:([sxz]|sh|ch)es|s)$", r"\1", verb)
    return f"{_cap(agent)} {verb} {_lower_first(passive.group('subject'), context)}."


def with_aliases(sentence: str, aliases: dict[str, str]) -> str | None:
    """The sentence with a thing its document names twice called by the other name (`Heron has 96 CPU cores.` →
    `The build server has 96 CPU cores.`); None when it names no such thing or is the naming sentence itself."""
    for name, phrase in aliases.items():
        if re.search(rf"\b(?:is|are)\s+(?:called|named|known as)\s+{re.escape(name)}\b", sentence):
            continue
        for old, new in ((name, phrase), (phrase, name)):
            pattern = re.compile(rf"\b{re.escape(old)}\b", re.I if old == phrase else 0)
            if pattern.search(sentence):
                swapped = pattern.sub(new, sentence, count=1)
                return _cap(swapped)
    return None


def restated_examples(chunk: ChunkLike, facts: list[Fact], config: KnowledgeConfig,
                      aliases: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """`config.restatements` texts of the chunk's fact sentences, each in a new order and with every sentence
    that has another form (active voice, the other name) in one of them, asked for by varied prompts;
    deterministic for (seed, chunk)."""
    rng = random.Random(f"{config.seed}:{chunk_id(chunk)}:restated")
    sentences = list(dict.fromkeys(f.sentence for f in facts))
    if len(sentences) < 2 or config.restatements <= 0:
        return []
    forms = {s: [s, *filter(None, (active_statement(s, chunk.text), with_aliases(s, aliases or {})))]
             for s in sentences}
    title = chunk.title.strip() or "the documentation"
    prompts = rng.sample(_PROMPTS, min(config.restatements, len(_PROMPTS)))
    out = []
    for n, prompt in enumerate(prompts):
        order = sentences[:]
        rng.shuffle(order)
        text = " ".join(forms[s][(n + 1) % len(forms[s])] for s in order)
        out.append(knowledge_example(chunk, config, "restated", prompt.format(title=title), text))
    return out
