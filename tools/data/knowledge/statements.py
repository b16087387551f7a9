"""A chunk's facts restated as text: its fact sentences in another order and other words, as continued text.

Questions tie a fact to the ways it is asked; a fact stored only in its source sentence is found only from
that sentence's opening words ("Laptops are handed out ..."), so a question that starts elsewhere ("Where do new
staff get laptops?") makes the model start a sentence it never saw and fill in some other fact's value. The
same facts in several orders (each sentence next to different neighbours) and forms (the passive turned
active, a thing called by its other name) give each value more than one way in.
"""

from __future__ import annotations

import random
from typing import Any

from tools.data.knowledge.config import MAX_RESTATEMENTS, ChunkLike, KnowledgeConfig, chunk_id, knowledge_example
from tools.data.knowledge.facts import Fact
from tools.data.knowledge.questions import active_statement, with_aliases

_PROMPTS = ("Tell me what {title} says.", "Sum up {title} in a few sentences.", "What are the facts in {title}?",
            "Go over {title} for me.", "Restate {title} in plain words.")
assert len(_PROMPTS) == MAX_RESTATEMENTS


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
    prompts = rng.sample(_PROMPTS, config.restatements)
    out = []
    for n, prompt in enumerate(prompts):
        order = sentences[:]
        rng.shuffle(order)
        text = " ".join(forms[s][(n + 1) % len(forms[s])] for s in order)
        out.append(knowledge_example(chunk, config, "restated", prompt.format(title=title), text))
    return out
