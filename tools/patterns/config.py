"""MiningConfig: what counts as a pattern in the usage log; MiningResult: what one mining found."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tools.errors import ToolError

EMBEDDERS = ("auto", "wordllama", "tfidf")


@dataclass
class MiningConfig:
    """Thresholds and sizes of one mining; validated on construction."""

    min_prompt_chars: int = field(default=200, metadata={
        "help": "A system prompt (or few-shot block) shorter than this is not worth baking into the weights: "
                "~50 tokens cost callers little, and short prompts ('Be brief.') repeat by chance."})
    system_prompt_threshold: int = field(default=20, metadata={
        "help": "Requests with one long prompt before a nightly bakes it in. from_log needs 24 usable examples "
                "to train, so 20 raises the pattern early and the nightly reports it until it has enough."})
    near_duplicate: float = field(default=0.8, metadata={
        "help": "Jaccard similarity of word 3-shingles (MinHash LSH) above which two prompts are one pattern: "
                "0.8 merges a prompt whose date or customer name changes; lower merges different prompts."})
    num_perm: int = field(default=128, metadata={
        "help": "MinHash permutations; more = a sharper Jaccard estimate, slower. Only distinct prompts are "
                "hashed, so this barely matters at 100k rows."})
    min_fewshot_turns: int = field(default=2, metadata={
        "help": "User/assistant pairs before the last user message that make a few-shot block."})
    embedder: str = field(default="auto", metadata={
        "help": "auto = WordLlama (256-dim, ships in its wheel, loaded offline), TF-IDF + SVD if it cannot "
                "load | wordllama (fail if it cannot load) | tfidf."})
    min_cluster_size: int = field(default=20, metadata={
        "help": "No cluster smaller than this is kept (HDBSCAN's min_cluster_size, enforced again after "
                "assignment), so no single person's requests show up as a pattern of their own (Clio)."})
    cluster_threshold: int = field(default=30, metadata={
        "help": "Members a cluster of similar requests needs before a nightly acts on it."})
    cluster_merge: float = field(default=0.5, metadata={
        "help": "Cosine similarity of two cluster centres above which they are one cluster. HDBSCAN splits a "
                "request template by its slot values ('recipe for lasagna' / 'for curry'); measured on "
                "WordLlama vectors, such splits sat at 0.39-0.9 and different topics below 0.22."})
    cluster_sample: int = field(default=6000, metadata={
        "help": "HDBSCAN runs on at most this many requests (O(n log n) to O(n^2)); the rest join the nearest "
                "cluster centre when within that cluster's radius. 6000 clusters in ~5 s on 2 cores."})
    negative_threshold: int = field(default=10, metadata={
        "help": "Requests rated -1 before their pattern is acted on; corrections become the training replies."})
    upstream_threshold: int = field(default=50, metadata={
        "help": "Upstream-answered requests (per upstream model and system prompt) before distilling them."})
    drift_distance: float = field(default=0.15, metadata={
        "help": "Cosine distance between a cluster's centre on the last day and on the days before it that "
                "counts as drift (Arize Phoenix style); unit vectors, so 0 = same, 1 = orthogonal."})
    drift_share: float = field(default=0.1, metadata={
        "help": "Change of a cluster's share of the day's traffic (last day vs the mean of earlier days), in "
                "absolute terms (0.1 = 10 points), that counts as drift."})
    drift_min_day: int = field(default=5, metadata={
        "help": "Members a cluster needs on the last day (and before it) for a centroid distance to mean anything."})
    min_report_count: int = field(default=5, metadata={
        "help": "Prompt and upstream groups smaller than this are not stored at all: noise, not patterns."})
    examples: int = field(default=5, metadata={"help": "Request ids kept as examples per pattern (the latest)."})
    seed: int = field(default=0, metadata={"help": "Seed of the HDBSCAN sample and the SVD, so minings repeat."})

    def __post_init__(self) -> None:
        if self.embedder not in EMBEDDERS:
            raise ToolError(f"Embedder {self.embedder!r} is not one of {', '.join(EMBEDDERS)}.")
        if not 0 < self.near_duplicate <= 1:
            raise ToolError(f"near_duplicate {self.near_duplicate} must be in (0, 1].")
        if self.min_cluster_size < 2:
            raise ToolError(f"min_cluster_size {self.min_cluster_size} must be at least 2.")
        if self.cluster_sample < self.min_cluster_size * 2:
            raise ToolError(f"cluster_sample {self.cluster_sample} must be at least twice min_cluster_size.")


@dataclass
class MiningResult:
    """One mining: what was read, skipped and found, how long each step took."""

    rows_read: int
    """Usage rows read (since `since`)."""
    rows_used: int
    """Rows with content that the kinds were mined from."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows left out and why: not_ok, no_content, malformed, shadow, after_now, feedback_unknown."""
    counts: dict[str, int] = field(default_factory=dict)
    """Patterns found per kind."""
    actionable: int = 0
    """Patterns a nightly would act on (new, over threshold, with a goal)."""
    patterns: list[dict[str, Any]] = field(default_factory=list)
    """The patterns, stored (with state) when saved, highest score first."""
    embedder: str = ""
    """wordllama | tfidf | none (nothing to cluster)."""
    notes: list[str] = field(default_factory=list)
    """Things a person should know: a fallback taken, contradictory feedback."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step and in total."""
    saved: bool = True
    message: str = ""
    """One plain sentence: what was found, or that there is nothing to do."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
