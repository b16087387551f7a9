"""Knowledge examples that cover every fact of every chunk: rule-made questions, an optional teacher, a hold-out.

Each sentence that states a fact (a number, a name, a definition, a rule) gets questions of several kinds,
each answered from that chunk, so a trained model learns the middle of a page and not only its opening; the
hold-out asks about facts spread over the corpus in a phrasing the training set does not use for that fact.

config: settings and the example shape · grammar: the words and word forms the rules share ·
facts: which sentences, which span · questions: questions by rule ·
offline: a chunk's rule-made examples · statements: its facts restated ·
teacher: the optional endpoint · build: build, check, estimate and the hold-out split.
"""

from tools.data.knowledge.build import (
    KnowledgeResult,
    KnowledgeSplit,
    build_knowledge,
    check_examples,
    estimate_examples,
    knowledge_split,
    offline_config,
    teacher_pair_counts,
)
from tools.data.knowledge.config import (
    CITED_KINDS,
    DEFAULT_TEACHER_MODEL,
    OFFLINE_KINDS,
    RECITATION_KINDS,
    TEACHER_KIND,
    ChunkLike,
    KnowledgeConfig,
    chunk_id,
    knowledge_example,
    topic,
)
from tools.data.knowledge.facts import Fact, chunk_facts, find_fact, find_facts, split_sentences
from tools.data.knowledge.offline import offline_examples
from tools.data.knowledge.questions import (
    alias_questions,
    cloze,
    document_aliases,
    embedded_question,
    factual_question,
    object_phrases,
    paraphrases,
    reworded_questions,
    subject_phrase,
    support,
    topical_question,
)
from tools.data.knowledge.teacher import (
    TEACHER_PROMPT,
    TEACHER_SYSTEM,
    TeacherEndpoint,
    TeacherReply,
    ask_teacher,
    parse_teacher_pairs,
    teacher_examples,
    teacher_messages,
)

__all__ = [
    "CITED_KINDS",
    "DEFAULT_TEACHER_MODEL",
    "OFFLINE_KINDS",
    "RECITATION_KINDS",
    "TEACHER_KIND",
    "TEACHER_PROMPT",
    "TEACHER_SYSTEM",
    "ChunkLike",
    "Fact",
    "KnowledgeConfig",
    "KnowledgeResult",
    "KnowledgeSplit",
    "TeacherEndpoint",
    "TeacherReply",
    "alias_questions",
    "ask_teacher",
    "build_knowledge",
    "check_examples",
    "chunk_facts",
    "chunk_id",
    "cloze",
    "document_aliases",
    "embedded_question",
    "estimate_examples",
    "factual_question",
    "find_fact",
    "find_facts",
    "knowledge_example",
    "knowledge_split",
    "object_phrases",
    "offline_config",
    "offline_examples",
    "paraphrases",
    "parse_teacher_pairs",
    "reworded_questions",
    "split_sentences",
    "subject_phrase",
    "support",
    "teacher_examples",
    "teacher_messages",
    "teacher_pair_counts",
    "topic",
    "topical_question",
]
