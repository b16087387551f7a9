"""The rule-made examples of one chunk: every offline kind of question, and the recitations, for its facts."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from tools.data.knowledge.config import ChunkLike, KnowledgeConfig, chunk_id, knowledge_example, topic
from tools.data.knowledge.facts import Fact, facts_by_sentence, split_sentences
from tools.data.knowledge.grammar import join, upper_first
from tools.data.knowledge.questions import (
    alias_questions,
    cloze,
    factual_question,
    object_phrases,
    paraphrases,
    reworded_questions,
    subject_phrase,
    topical_question,
)
from tools.data.knowledge.statements import fronted_statements
from tools.text import normalize_answer


def offline_examples(chunk: ChunkLike, facts: list[Fact], config: KnowledgeConfig,
                     kinds: Iterable[str] | None = None, aliases: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The rule-made examples of one chunk, deterministic for (seed, chunk); `aliases` are the names its
    document gives things (document_aliases), for the alias kind."""
    kinds = set(config.kinds if kinds is None else kinds)
    rng = random.Random(f"{config.seed}:{chunk_id(chunk)}")
    context, out = chunk.text, []
    title = chunk.title.strip() or "the documentation"
    for fact in facts:
        short = fact.sentence if fact.span_kind == "rule" else fact.value
        question = factual_question(fact, context)

        def add(kind: str, prompt: str, answer: str, fact: Fact = fact, short: str = short) -> None:
            out.append(knowledge_example(chunk, config, kind, prompt, answer, fact_id=fact.fact_id, short=short))

        if "factual" in kinds:
            add("factual", question, fact.sentence)
        if "topical" in kinds:
            add("topical", topical_question(question, title, rng), fact.sentence)
        if "answer_first" in kinds and fact.span_kind not in ("rule", "definition"):
            add("answer_first", f"{question} Give the short answer first.",
                f"{upper_first(fact.value)}. {fact.sentence}")
        if "cloze" in kinds:
            add("cloze", *cloze(fact))
        if "paraphrase" in kinds:
            for phrasing in paraphrases(fact, context, config.paraphrases_per_fact, rng):
                add("paraphrase", phrasing, fact.sentence)
        if "reworded" in kinds:
            for phrasing in reworded_questions(fact, context):
                add("reworded", phrasing, fact.sentence)
        if "alias" in kinds and aliases:
            for phrasing in alias_questions(fact, context, aliases):
                add("alias", phrasing, fact.sentence)
    if "about" in kinds:
        for sentence, stated in facts_by_sentence(facts).items():  # filed under the sentence's first fact
            # Its subject, and the other things it names: a fact is stored after the words that lead to it, so
            # a question about a thing a sentence names late (`When do the nightly tests run?`) must learn to
            # start there, and is answered by the sentence opened by that thing where a rule can reopen it.
            values = [f.value for f in stated]
            fronted = fronted_statements(sentence, values, context)
            subject = subject_phrase(sentence, context)
            things = [subject] if subject else []
            things += object_phrases(sentence, values, context)
            for thing in things:
                if normalize_answer(thing) != normalize_answer(title):
                    answer = fronted.get(thing, [sentence])[0]
                    out.append(knowledge_example(chunk, config, "about", f"What does {title} say about {thing}?",
                                                 answer, fact_id=stated[0].fact_id, short=stated[0].value))
    if "section" in kinds:
        # A sentence stating three facts is one line of the answer, not three.
        lines = list(facts_by_sentence(facts)) or split_sentences(chunk.text)
        answer = ""
        for line in lines:
            if answer and len(answer.split()) + len(line.split()) > config.section_answer_words:
                break
            answer = join(answer, line)
        if answer:
            question = f"What does {title} say about {topic(chunk)}?"
            out.append(knowledge_example(chunk, config, "section", question, answer))
    if "passage" in kinds and chunk.text.strip():
        where = f"the section {topic(chunk)} of {title}" if chunk.heading else title
        out.append(knowledge_example(chunk, config, "passage", f"Recite {where}.", chunk.text.strip()))
    return out
