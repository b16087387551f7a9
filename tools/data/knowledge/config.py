"""Knowledge generation settings, what it reads from a chunk, and the example every kind of question becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tools.errors import ToolError
from tools.train.estimate import GOAL_SAMPLE

OFFLINE_KINDS = ("factual", "topical", "about", "answer_first", "cloze", "paraphrase", "reworded", "alias", "section",
                 "passage", "restated")
RECITATION_KINDS = ("cloze", "section", "passage", "restated")
"""Kinds that are not questions a user would ask: a blank to fill, a section summed up, a passage recited or
restated."""
MAX_RESTATEMENTS = 5
TEACHER_KIND = "teacher"
CITED_KINDS = ("factual", "topical", "paraphrase", "reworded", "alias", "about", TEACHER_KIND)
"""Kinds whose answer is a fact's sentence given to a question a user would ask: with `cite_title`, the answer
names its page first."""
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
        "help": f"Offline kinds to generate, any of {OFFLINE_KINDS}; topical = the question names its document, "
                "about = what the document says about a sentence's subject and the other things it names, "
                "reworded = the question built from the sentence's structure (passive to active, a limit as a "
                "limit), alias = a question naming a thing by "
                "the other name its document gives it, passage = recite the whole chunk, restated = the chunk's "
                "fact sentences in other orders and forms (active voice, the other name)."})
    max_facts_per_chunk: int = field(default=16, metadata={
        "help": "Fact sentences used per chunk; when a chunk has more, they are spread over all of it."})
    paraphrases_per_fact: int = field(default=3, metadata={
        "help": "Rule-made rephrasings per fact (synonyms, reordered clauses); the hold-out draws from them."})
    restatements: int = field(default=5, metadata={
        "help": f"Restated texts per chunk (kind restated, 0 to {MAX_RESTATEMENTS}, one per prompt wording): its fact "
                "sentences shuffled, some in another form. 8 with value-first forms lost more suite items and "
                "recalled no more than 5 (bench/knowledge_curve.py)."})
    cite_title: bool = field(default=True, metadata={
        "help": "Answers to questions start by naming their page (`According to the Leave page: Sick leave must be "
                "reported to Marta Ilves.`): the model first picks the page, which questions in new words rarely "
                "miss, then the sentence within it. bench/knowledge_curve.py: 30-33/40 from step 68 against 23-27 "
                "without, where most misses had taken a sentence from another page."})
    section_answer_words: int = field(default=120, metadata={
        "help": "The section question's answer is the chunk's fact sentences, cut near this many words."})
    seed: int = 42
    holdout_share: float = field(default=0.3, metadata={
        "help": "Share of each source's facts that get one hold-out question (at least one per source)."})
    holdout_kinds: tuple[str, ...] = field(default=(TEACHER_KIND, "paraphrase"), metadata={
        "help": "Kinds a hold-out question may have, in order of preference; its fact trains on the others "
                "(its reworded and alias questions too: they are what teaches a fact in other words). A teacher's "
                "wording is furthest from the rules', so it is held out first."})
    validation_questions: int = field(default=GOAL_SAMPLE, metadata={
        "help": "Questions kept out of training to score checkpoints on, one per fact, of `validation_kind` "
                "where a fact has one; a fact keeps every other kind (a 10% split took a fact's only cloze or "
                f"factual question). Training scores {GOAL_SAMPLE}, so the default keeps no more: 16 took 8 "
                "more facts' reworded questions out of training for a validation loss alone, over half the facts "
                "of a 4-page corpus."})
    validation_kind: str = field(default="reworded", metadata={
        "help": "Kind of the validation questions: a validation fact loses every training question of this kind, "
                "so checkpoints are scored on wordings they never trained on for it, as users ask (rephrasings "
                "of trained questions scored 1.0 from step 40 on and could not tell checkpoints apart). Facts "
                "without it, or '' for all, give a rephrasing of a kind they keep (`holdout_kinds`)."})
    support_threshold: float = field(default=0.6, metadata={
        "help": "Share of an answer's content words that must appear in its chunk; below it is rejected."})
    system_prompt: str = field(default="", metadata={"help": "A system turn for every example; empty = none."})
    teacher_pairs_per_chunk: int = field(default=6, metadata={"help": "Fewest question/answer pairs asked per chunk."})
    teacher_pairs_per_fact: int = field(default=3, metadata={
        "help": "Pairs asked per fact the rules find in a chunk, each in other words: recall grows with the "
                "number of different questions a fact is trained on."})
    teacher_replaces: tuple[str, ...] = field(default=(), metadata={
        "help": "Offline kinds a chunk drops when the teacher answered for it (they come back if it failed). "
                "Empty = the teacher adds to the rule-made questions: recall grows with questions per fact."})
    teacher_concurrency: int = field(default=4, metadata={"help": "Chunks asked at the same time."})
    teacher_retries: int = field(default=2, metadata={
        "help": "Retries per chunk after a timeout, 429/5xx or unusable JSON; then the chunk goes offline."})
    teacher_backoff_s: float = field(default=1.0, metadata={"help": "First retry wait; doubles each retry."})
    teacher_timeout_s: float = field(default=60.0, metadata={"help": "Seconds per teacher request."})

    def __post_init__(self) -> None:
        if self.validation_kind and self.validation_kind not in OFFLINE_KINDS:
            raise ToolError(f"Unknown validation kind {self.validation_kind!r}; use one of {OFFLINE_KINDS} or ''.")
        unknown = set(self.kinds) - set(OFFLINE_KINDS)
        if unknown:
            raise ToolError(f"Unknown knowledge kinds {sorted(unknown)}; use any of {OFFLINE_KINDS}.")
        if not 0 <= self.holdout_share < 1 or not 0 < self.support_threshold <= 1:
            raise ToolError("KnowledgeConfig needs 0 <= holdout_share < 1 and 0 < support_threshold <= 1.")
        if min(self.max_facts_per_chunk, self.teacher_concurrency, self.teacher_pairs_per_chunk,
               self.teacher_pairs_per_fact) < 1 \
                or min(self.paraphrases_per_fact, self.teacher_retries, self.validation_questions) < 0:
            raise ToolError("KnowledgeConfig counts must be positive (paraphrases, retries and validation questions "
                            "may be 0).")
        if not 0 <= self.restatements <= MAX_RESTATEMENTS:
            raise ToolError(f"KnowledgeConfig restatements must be 0 to {MAX_RESTATEMENTS} (one per prompt wording); "
                            f"got {self.restatements}.")

    def teacher_pairs(self, n_facts: int) -> int:
        """Pairs to ask a teacher for about a chunk stating `n_facts` facts."""
        return max(self.teacher_pairs_per_chunk, self.teacher_pairs_per_fact * n_facts)


def chunk_id(chunk: ChunkLike) -> str:
    return f"{chunk.doc_id}:{chunk.index}"


def topic(chunk: ChunkLike) -> str:
    """The chunk's own heading (last part of `A > B > C`), else its document title."""
    leaf = chunk.heading.split(">")[-1].strip() if chunk.heading else ""
    return leaf or chunk.title.strip() or "this topic"


def knowledge_example(chunk: ChunkLike, config: KnowledgeConfig, kind: str, question: str, answer: str, *,
                      fact_id: str | None = None, short: str | None = None, origin: str = "offline") -> dict[str, Any]:
    system = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    cid = chunk_id(chunk)
    return {"messages": [*system, {"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "meta": {"kind": kind, "fact_id": fact_id or f"{cid}#{kind}", "chunk_id": cid, "source": chunk.source,
                     "doc_id": chunk.doc_id, "heading": chunk.heading, "answer": short or answer, "origin": origin}}
