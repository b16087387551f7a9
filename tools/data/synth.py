"""Offline training-data generators: turn documents into chat examples when no examples were given.

Each generator is deterministic for a seed, so a resumed run rebuilds the same data.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tools.data.ingest import Document
from tools.errors import ToolError

KNOWLEDGE_QUESTIONS = (
    "What does the documentation say about {title}?",
    "Explain {title}.",
    "Give me a short overview of {title}.",
    "What should I know about {title}?",
)
STYLE_PROMPTS = (
    "Write a page about {title}.",
    "Write the entry on {title}.",
    "Draft a section titled \"{title}\".",
)
SYSTEM_PROMPT = "Answer from the project's documentation, in its own words and style."


@dataclass(frozen=True)
class SynthConfig:
    """How documents become examples."""

    objective: str = "knowledge"
    """knowledge: question → the passage's lead; style: a title → the page written in the house style."""
    max_answer_words: int = 40
    """Answers are cut at a sentence boundary below this length (keeps training and evaluation fast)."""
    questions_per_document: int = 3
    """How many phrasings each passage gets; held-out phrasings test recall of the same facts."""
    seed: int = 42


def synthesize_examples(documents: list[Document], config: SynthConfig) -> list[dict]:
    """Chat examples built from `documents` without any LLM."""
    if config.objective == "task":
        raise ToolError("A 'task' goal needs input/output examples: pass a JSONL/CSV file with --data "
                        "(chat `messages`, `prompt`/`completion` or `instruction`/`output`).")
    rng = random.Random(config.seed)
    templates = KNOWLEDGE_QUESTIONS if config.objective == "knowledge" else STYLE_PROMPTS
    examples = []
    for doc in documents:
        answer = lead_text(doc.text, config.max_answer_words)
        if len(answer.split()) < 8:
            continue
        title = clean_title(doc.title)
        for template in rng.sample(templates, k=min(config.questions_per_document, len(templates))):
            examples.append({"messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": template.format(title=title)},
                {"role": "assistant", "content": answer},
            ]})
    if not examples:
        raise ToolError("The documents held no prose passages long enough to learn from "
                        "(need paragraphs of at least 8 words).")
    return examples


def clean_title(title: str) -> str:
    return re.sub(r"\s+", " ", title.replace('"', "").replace("`", "")).strip()


def lead_text(text: str, max_words: int) -> str:
    """The first prose paragraphs of `text` (code and grammar blocks skipped), cut at a sentence end."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines or lines[0].startswith((" ", "\t", "#", "|", ">>>", "```")) or "::=" in block:
            continue
        paragraphs.append(" ".join(line.strip() for line in lines))
        if sum(len(p.split()) for p in paragraphs) >= max_words:
            break
    words = " ".join(paragraphs).split()
    if len(words) <= max_words:
        return " ".join(words)
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind(".\u00a0"))
    return cut[: end + 1] if end > len(cut) // 3 else cut.rstrip(",;:") + "."
