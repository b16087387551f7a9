"""TaskSpec: what a goal asks for (objective, base model, sources, criteria, budget), as a pydantic schema."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from tools.data.ingest import BUILTIN_CORPORA as BUILTIN_CORPORA  # re-exported for agent.goal
from tools.models import DEFAULT_BASE

Objective = Literal["style", "knowledge", "task"]
SourceKind = Literal["folder", "file", "url", "crawl_topic", "dataset", "builtin"]
Policy = Literal["interactive", "auto", "nightly"]
ConflictField = Literal["base_model", "budget_minutes", "policy", "objective", "sources"]

SLUG_MAX = 40


def _drop_defaults(schema: dict[str, Any]) -> None:
    # OpenAI's strict structured outputs (and Azure's) reject `default` inside properties; the
    # model must fill every field anyway, and pydantic re-applies defaults when it validates.
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class _Schema(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_drop_defaults)


class Source(_Schema):
    """One place the training material comes from."""

    kind: SourceKind = Field(description="folder | file | url | crawl_topic | dataset (JSONL/JSON/CSV/Parquet "
                                         "examples) | builtin (a corpus that ships with ingrain).")
    location: str = Field(description="Path, URL, topic words, or builtin corpus name (e.g. pydoc_data).")


class SuccessCriteria(_Schema):
    """When the tuned model counts as better than its base."""

    min_improvement: float = Field(0.0, description="Smallest gain over the base on the hold-out metric, as a "
                                                    "fraction (0.05 = 5 % better).")
    max_regression: float = Field(0.1, description="Largest loss allowed on the regression suite, as a "
                                                    "fraction of the base's score.")
    metric: str | None = Field(None, description="Hold-out metric the goal names (rouge_l, exact_match, f1, "
                                                 "accuracy, perplexity, loss, style); null to pick by objective.")
    notes: str = Field("", description="Anything else the goal says about what good output looks like.")


class Conflict(_Schema):
    """Two parts of the goal that cannot both hold."""

    field: ConflictField = Field(description="Which TaskSpec field the contradiction is about.")
    message: str = Field(description="The contradiction, quoting both sides (e.g. two different base models).")


class TaskSpec(_Schema):
    """A goal made precise enough to plan a training run from."""

    objective: Objective = Field(description="style: imitate a way of writing; knowledge: answer questions "
                                             "from documents; task: classify/extract/translate/convert.")
    base_model: str = Field(DEFAULT_BASE, description="Base model name (smollm2-135m) or local model folder.")
    sources: list[Source] = Field(default_factory=list, description="Where the training material comes from.")
    success: SuccessCriteria = Field(default_factory=SuccessCriteria,
                                     description="When the tuned model counts as better than its base.")
    budget_minutes: int | None = Field(None, description="Wall-time budget for the whole run in minutes; null "
                                                         "when the goal names none.")
    policy: Policy | None = Field(None, description="interactive (ask at gates) | auto (no questions) | nightly "
                                                    "(unattended, recurring); null when the goal names none.")
    task_name: str = Field("", description="Short lowercase slug naming the task, e.g. wiki-summary-style.")
    description: str = Field("", description="The goal restated in one or two plain sentences.")
    conflicts: list[Conflict] = Field(default_factory=list,
                                      description="Contradictions in the goal; empty when there are none.")
    parser: SkipJsonSchema[Literal["llm", "deterministic"]] = Field(
        "deterministic", description="Which path produced this spec (set by ingrain, not by the model).")

    @field_validator("base_model", mode="before")
    @classmethod
    def _default_base(cls, value: Any) -> Any:
        return value if isinstance(value, str) and value.strip() else DEFAULT_BASE

    @model_validator(mode="after")
    def _fill_task_name(self) -> TaskSpec:
        self.task_name = slugify(self.task_name) or slugify(self.description) or f"{self.objective}-model"
        return self


_STOP = {"a", "an", "the", "my", "our", "that", "this", "it", "of", "to", "in", "into", "so", "can", "and",
         "make", "model", "small", "please", "i", "me", "want", "which", "for", "on", "from", "with", "be"}


def slugify(text: str, limit: int = SLUG_MAX) -> str:
    """Lowercase words joined by '-', stop words dropped, cut at a word boundary under `limit` chars."""
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP]
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > limit:
            break
        slug = candidate
    return slug or "-".join(words)[:limit].strip("-")
