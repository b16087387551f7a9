"""Knowledge recall: does a reply state the fact a hold-out question asks about; per source document."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.errors import ToolError
from tools.text import normalize_answer

LONG_ANSWER_WORDS = 4
"""From this many words on, an answer may be restated: enough of its words count, not the exact string."""
MIN_TOKEN_RECALL = 0.8


def knowledge_recall(output: str, fact_answer: str, *, min_token_recall: float = MIN_TOKEN_RECALL) -> float:
    """1.0 when the reply holds the fact, else 0.0.

    Held: the normalised answer occurs in the normalised reply as whole words (`7:45` matches `7.45`, case
    and articles do not count), or, for answers of LONG_ANSWER_WORDS words or more, at least
    `min_token_recall` of the answer's words occur in the reply.
    """
    answer, reply = normalize_answer(fact_answer).split(), normalize_answer(output).split()
    if not answer:
        raise ToolError("A knowledge question has an empty fact answer; rebuild the hold-out "
                        "(tools.data.knowledge puts the fact in each example's meta.answer).")
    if f" {' '.join(answer)} " in f" {' '.join(reply)} ":
        return 1.0
    if len(answer) >= LONG_ANSWER_WORDS:
        found = sum((Counter(answer) & Counter(reply)).values())
        return float(found / len(answer) >= min_token_recall)
    return 0.0


@dataclass(frozen=True)
class KnowledgeRecall:
    """Recall over the hold-out, and per source document so a page the model never learned stands out."""

    recall: float
    n: int
    by_source: dict[str, dict[str, float]] = field(default_factory=dict)
    """source → {"recall": mean, "n": questions}, sources sorted by name."""

    def weakest(self, k: int = 3) -> list[str]:
        """The k sources with the lowest recall (fewest questions first among equals)."""
        return sorted(self.by_source, key=lambda s: (self.by_source[s]["recall"], self.by_source[s]["n"]))[:k]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recall_by_source(scores: Sequence[float], sources: Sequence[str]) -> KnowledgeRecall:
    """Mean recall overall and per source; scores[i] is the recall of a question about sources[i]."""
    if len(scores) != len(sources):
        raise ToolError(f"{len(scores)} scores for {len(sources)} sources: score every hold-out question once.")
    if not scores:
        raise ToolError("No knowledge questions were scored; the hold-out is empty.")
    grouped: dict[str, list[float]] = defaultdict(list)
    for score, source in zip(scores, sources, strict=True):
        grouped[source].append(score)
    by_source = {s: {"recall": sum(v) / len(v), "n": len(v)} for s, v in sorted(grouped.items())}
    return KnowledgeRecall(sum(scores) / len(scores), len(scores), by_source)


def score_knowledge(outputs: Sequence[str], holdout: Sequence[dict[str, Any]]) -> KnowledgeRecall:
    """Recall of replies to hold-out examples built by tools.data.knowledge (fact and source from `meta`)."""
    if len(outputs) != len(holdout):
        raise ToolError(f"{len(outputs)} replies for {len(holdout)} hold-out questions: generate one per question.")
    scores = [knowledge_recall(out, ex["meta"]["answer"]) for out, ex in zip(outputs, holdout, strict=True)]
    return recall_by_source(scores, [ex["meta"]["source"] for ex in holdout])
