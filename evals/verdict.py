"""Judge a tuned model against its base: hold-out metrics with intervals, style, regression, verdict."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.generate import BATCH_ROWS, generate_replies, load_for_eval
from evals.judge import judge_pairwise
from evals.knowledge import knowledge_recall, recall_by_source
from evals.metrics import (
    SMALL_SAMPLE,
    TargetLoss,
    bootstrap_ci,
    exact_match,
    loss_summary,
    paired_diff_ci,
    rouge_l,
    target_losses,
    token_f1,
)
from evals.regression import (
    SUITE_MAX_NEW_TOKENS,
    RegressionComparison,
    compare,
    grounded_suite,
    load_suite,
    run_regression,
    sampled_passes,
)
from evals.style import StyleProfile, style_profile
from tools.errors import ToolError
from tools.grounding import GroundingIndex
from tools.models import is_adapter_dir

OBJECTIVES = ("style", "knowledge", "task")
LOSS_BATCH = 8
"""Loss batches hold full-vocabulary logits (49k × length × 4 bytes per row), so they stay small."""
PRIMARY_METRIC = {"style": "style_conformance", "knowledge": "knowledge_recall", "task": "rouge_l"}
KNOWLEDGE_NLL_LIMIT = 1.0
"""Forgetting limit for knowledge goals, in nats per token of reference NLL on the general suite. Facts
taught by fine-tuning move token probabilities on unrelated references much more than a style does: a LoRA
that learned 22 of 40 made-up facts raised the suite's reference NLL by 1.0 (1.2 later) while its pass rate
stayed at the base's 44%. The pass-rate check is the same for every objective."""


def nll_limit(objective: str) -> float:
    """The largest reference-NLL rise the verdict allows for `objective`."""
    return KNOWLEDGE_NLL_LIMIT if objective == "knowledge" else Criteria.nll_threshold


@dataclass(frozen=True)
class Criteria:
    """What a tuned model must show to pass."""

    margin: float = field(default=0.05, metadata={
        "help": "Absolute gain over base required on the objective's metric (all metrics are 0–1)."})
    regression_threshold: float = field(default=0.1, metadata={
        "help": "Largest allowed drop of the general-suite pass rate (0.1 = 10 points)."})
    nll_threshold: float = field(default=0.5, metadata={
        "help": "Largest allowed rise of reference NLL on the general suite, in nats per token."})
    min_recall: float = field(default=0.5, metadata={
        "help": "Knowledge goals: share of held-out questions the tuned model must answer with the fact. Beating "
                "a base that knows none of the facts says little: a model answering 5 of 16 did that."})
    min_holdout: int = field(default=SMALL_SAMPLE, metadata={
        "help": "Below this many hold-out examples the verdict claims no significance."})
    max_new_tokens: int = field(default=128, metadata={"help": "Token cap per generated hold-out reply."})
    suite_max_new_tokens: int = field(default=SUITE_MAX_NEW_TOKENS, metadata={
        "help": "Token cap on the regression suite (its answers are short; 64 keeps it cheap)."})
    batch_size: int = field(default=BATCH_ROWS, metadata={
        "help": "Most prompts per generation batch (split evenly, fewer when a big model's cache would not fit): "
                "SmolLM2 answered the 36-item suite in 16 s at 32 a batch, 12.5 s at 64 (2 cores)."})
    samples: int = field(default=8, metadata={"help": "Rows in the before/after sample table."})
    required_support: float = field(default=0.95, metadata={
        "help": "A style check that holds for at least this share of training targets is required."})
    required_rate: float = field(default=0.8, metadata={
        "help": "Share of tuned hold-out replies that must pass each required check, or the verdict fails."})
    regression: bool = field(default=True, metadata={"help": "Run the general regression suite."})
    judge: bool = field(default=False, metadata={
        "help": "Also ask an LLM judge (OPENAI_BASE_URL) for pairwise preferences; informational only."})
    bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples per interval."})
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ToolError(f"margin={self.margin}: use a gain between 0 and 1 (default 0.05).")
        if not 0 <= self.min_recall <= 1:
            raise ToolError(f"min_recall={self.min_recall}: use a share between 0 and 1 (default 0.5).")
        if self.regression_threshold < 0 or self.nll_threshold < 0:
            raise ToolError("regression_threshold and nll_threshold must be >= 0.")
        if min(self.max_new_tokens, self.suite_max_new_tokens, self.batch_size, self.min_holdout) < 1 \
                or self.bootstrap < 100:
            raise ToolError("Criteria needs max_new_tokens, suite_max_new_tokens, batch_size, min_holdout >= 1 "
                            "and bootstrap >= 100.")


@dataclass
class EvalResult:
    """Everything the report and the deploy gate need, JSON-safe through `to_dict()`."""

    objective: str
    n_holdout: int
    primary_metric: str
    metrics: dict[str, dict[str, Any]]
    """metric → {base, tuned, delta}: intervals of the mean (delta is paired tuned − base)."""
    style: dict[str, Any]
    loss: dict[str, Any] | None
    regression: dict[str, Any] | None
    samples: list[dict[str, str]]
    passed: bool
    reasons: list[str]
    significant: bool
    knowledge: dict[str, Any] | None = None
    """Knowledge recall of base and tuned, overall and per source document (knowledge hold-outs only)."""
    judge: dict[str, Any] | None = None
    """Pairwise LLM-judge preferences when enabled (not part of the pass/fail decision)."""
    wall_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    tuned_outputs: list[str] = field(default_factory=list)
    """The tuned model's reply to each hold-out example, in hold-out order."""

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def holdout_facts(examples: Sequence[dict[str, Any]]) -> list[str] | None:
    """The fact each knowledge hold-out question asks about (`meta.answer`), or None when any lacks one."""
    facts = [(ex.get("meta") or {}).get("answer") for ex in examples]
    return facts if facts and all(isinstance(f, str) and f.strip() for f in facts) else None


def holdout_scores(references: Sequence[str], outputs: Sequence[str],
                   profile: StyleProfile | None, facts: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Per-example scores of one model's outputs against the references (and the facts, for knowledge)."""
    scores = {
        "rouge_l": [rouge_l(o, r) for o, r in zip(outputs, references, strict=True)],
        "token_f1": [token_f1(o, r) for o, r in zip(outputs, references, strict=True)],
        "exact_match": [exact_match(o, r) for o, r in zip(outputs, references, strict=True)],
    }
    if profile is not None and profile.checks:
        scores["style_conformance"] = [profile.conformance(o) or 0.0 for o in outputs]
    if facts is not None:
        scores["knowledge_recall"] = [knowledge_recall(o, f) for o, f in zip(outputs, facts, strict=True)]
    return scores


def judge_outputs(
    holdout_examples: Sequence[dict[str, Any]],
    base_outputs: Sequence[str],
    tuned_outputs: Sequence[str],
    train_targets: Sequence[str],
    objective: str = "task",
    criteria: Criteria | None = None,
    *,
    base_losses: Sequence[TargetLoss] | None = None,
    tuned_losses: Sequence[TargetLoss] | None = None,
    regression: RegressionComparison | None = None,
) -> EvalResult:
    """The verdict from outputs already generated (no model needed): metrics, style, regression, reasons."""
    criteria = criteria or Criteria()
    if objective not in OBJECTIVES:
        raise ToolError(f"Unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}.")
    if not holdout_examples:
        raise ToolError("The hold-out set is empty: keep some examples out of training to evaluate on.")
    references = [ex["messages"][-1]["content"] for ex in holdout_examples]
    n = len(references)
    if len(base_outputs) != n or len(tuned_outputs) != n:
        raise ToolError(f"{n} hold-out examples but {len(base_outputs)} base and {len(tuned_outputs)} tuned "
                        "outputs: generate one reply per hold-out example with each model.")
    profile = style_profile(train_targets)
    facts = holdout_facts(holdout_examples)
    base_scores = holdout_scores(references, base_outputs, profile, facts)
    tuned_scores = holdout_scores(references, tuned_outputs, profile, facts)
    ci = dict(n=criteria.bootstrap, seed=criteria.seed)
    metrics = {name: {"base": bootstrap_ci(base_scores[name], **ci).to_dict(),
                      "tuned": bootstrap_ci(tuned_scores[name], **ci).to_dict(),
                      "delta": paired_diff_ci(base_scores[name], tuned_scores[name], **ci).to_dict()}
               for name in base_scores}
    reasons: list[str] = []
    primary = PRIMARY_METRIC[objective]
    if primary == "knowledge_recall" and primary not in metrics:
        primary = "token_f1"
        reasons.append("The hold-out questions carry no fact to look for, so knowledge recall cannot be "
                       "measured; the verdict uses token F1 against the reference answers instead.")
    elif primary not in metrics:
        primary = "rouge_l"
        reasons.append("The training targets share no learnable style structure, so style conformance "
                       "cannot be judged; the verdict uses ROUGE-L against the references instead.")
    loss = None
    if base_losses is not None and tuned_losses is not None:
        base_nll, tuned_nll = [x.mean for x in base_losses], [x.mean for x in tuned_losses]
        loss = {"base": loss_summary(base_losses), "tuned": loss_summary(tuned_losses),
                "delta": paired_diff_ci(base_nll, tuned_nll, **ci).to_dict()}
        metrics["holdout_nll"] = {"base": bootstrap_ci(base_nll, **ci).to_dict(),
                                  "tuned": bootstrap_ci(tuned_nll, **ci).to_dict(), "delta": loss["delta"]}
    delta = metrics[primary]["delta"]
    small = n < criteria.min_holdout
    improved = delta["mean"] >= criteria.margin
    significant = not small and delta["low"] > 0
    base_mean, tuned_mean = metrics[primary]["base"]["mean"], metrics[primary]["tuned"]["mean"]
    summary = (f"{primary}: base {base_mean:.3f} → tuned {tuned_mean:.3f} "
               f"(Δ {delta['mean']:+.3f}, 95% CI {delta['low']:+.3f}…{delta['high']:+.3f}, n={n})")
    if not improved:
        reasons.append(f"Tuned does not beat base by the required margin {criteria.margin:g}: {summary}.")
    elif small:
        reasons.append(f"Tuned beats base on the point estimate ({summary}), but a hold-out of {n} "
                       f"examples (< {criteria.min_holdout}) is too small to claim significance.")
    elif not significant:
        reasons.append(f"The gain is within noise: {summary}; the interval includes zero.")
    else:
        reasons.append(f"Tuned beats base: {summary}.")
    too_few = primary == "knowledge_recall" and tuned_mean < criteria.min_recall
    if too_few:
        reasons.append(f"Tuned answers {tuned_mean:.0%} of the held-out questions with the fact; a knowledge "
                       f"goal needs at least {criteria.min_recall:.0%}. Run again with a larger --budget-minutes, or "
                       "with fewer documents per run.")
    regressed = regression is not None and regression.regressed
    if regression is not None:
        reasons.extend(f"Regression: {r}." for r in regression.reasons)
        if not regressed:
            reasons.append(f"No general regression (suite pass rate {regression.pass_rate_base:.0%} → "
                           f"{regression.pass_rate_tuned:.0%}, reference NLL {regression.nll_base:.2f} → "
                           f"{regression.nll_tuned:.2f}).")
        reasons.extend(f"Regression suite: {note}." for note in regression.notes)
    tuned_rates = profile.pass_rate(tuned_outputs)
    required = required_checks(profile, tuned_rates, objective, criteria)
    for name in required["failed"]:
        check = next(c for c in profile.checks if c.name == name)
        reasons.append(f"Required check failed: '{check.description}' holds for {check.support:.0%} of training "
                       f"targets but only {tuned_rates['per_check'][name]:.0%} of tuned hold-out replies "
                       f"(needs ≥ {criteria.required_rate:.0%}).")
    passed = improved and (significant or small) and not too_few and not regressed and not required["failed"]
    style = {"profile": profile.to_dict(), "description": profile.describe(), "required": required,
             "base": profile.pass_rate(base_outputs), "tuned": tuned_rates}
    samples = [{"input": _request_text(ex), "base": b, "tuned": t, "reference": r}
               for ex, b, t, r in zip(holdout_examples[:criteria.samples], base_outputs, tuned_outputs,
                                      references, strict=False)]
    knowledge = None
    if facts is not None:
        sources = [str((ex.get("meta") or {}).get("source") or "?") for ex in holdout_examples]
        knowledge = {"base": recall_by_source(base_scores["knowledge_recall"], sources).to_dict(),
                     "tuned": recall_by_source(tuned_scores["knowledge_recall"], sources).to_dict()}
    return EvalResult(objective, n, primary, metrics, style, loss,
                      regression.to_dict() if regression else None, samples, passed, reasons, significant,
                      knowledge=knowledge)


def required_checks(profile: StyleProfile, tuned_rates: dict[str, Any], objective: str,
                    criteria: Criteria) -> dict[str, Any]:
    """Checks nearly every training target passes are required of style and task models; which ones failed.

    A model that writes the right labels but never the closing line is not "in style", whatever its mean.
    """
    if objective not in ("style", "task") or not tuned_rates.get("per_check"):
        return {"checks": [], "failed": [], "min_rate": criteria.required_rate}
    names = [c.name for c in profile.checks if c.support >= criteria.required_support]
    failed = [n for n in names if tuned_rates["per_check"].get(n, 0.0) < criteria.required_rate]
    return {"checks": names, "failed": failed, "min_rate": criteria.required_rate}


def _request_text(example: dict[str, Any]) -> str:
    """The last user turn before the reference reply."""
    users = [m["content"] for m in example["messages"][:-1] if m["role"] == "user"]
    return users[-1] if users else ""


def run_evaluation(
    base_dir: str | Path,
    tuned: str | Path,
    holdout_examples: Sequence[dict[str, Any]],
    train_targets: Sequence[str],
    objective: str = "task",
    criteria: Criteria | None = None,
    cache_dir: str | Path | None = None,
    *,
    grounding: GroundingIndex | None = None,
    base_grounding: GroundingIndex | None = None,
) -> EvalResult:
    """Generate with base and tuned (an adapter folder or a full model folder), score, and decide.

    Each model is asked as it is served: the tuned one with its run's `grounding` excerpts above the hold-out
    and suite prompts (a knowledge goal), the base with `base_grounding` (a production version's index). A tuned
    model with excerpts is also compared with the base given the same excerpts, so the report says how much
    of its recall the training adds."""
    criteria = criteria or Criteria()
    started = time.perf_counter()
    tuned = Path(tuned)
    tuned_spec: Any = (Path(base_dir), tuned) if is_adapter_dir(tuned) else tuned
    prompts = [ex["messages"][:-1] for ex in holdout_examples]
    timings: dict[str, float] = {}
    runs = {}
    suites = {role: grounded_suite(load_suite(), g) if g else load_suite()
              for role, g in (("base", base_grounding), ("tuned", grounding))}
    base_with_excerpts = None
    for role, spec, asked in (("base", Path(base_dir), base_grounding), ("tuned", tuned_spec, grounding)):
        clock = time.perf_counter()
        loaded = load_for_eval(spec)
        examples = asked.ground_examples(list(holdout_examples)) if asked else holdout_examples
        outputs = generate_replies(loaded, [ex["messages"][:-1] for ex in examples],
                                   max_new_tokens=criteria.max_new_tokens, batch_size=criteria.batch_size,
                                   cache_dir=cache_dir, seed=criteria.seed)
        if role == "base" and grounding is not None and base_grounding is None:
            base_with_excerpts = generate_replies(loaded, grounding.ground(prompts),
                                                  max_new_tokens=criteria.max_new_tokens,
                                                  batch_size=criteria.batch_size, cache_dir=cache_dir,
                                                  seed=criteria.seed)
        timings[f"{role}_generate_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        losses = target_losses(loaded, examples, batch_size=LOSS_BATCH)
        suite = run_regression(loaded, suite=suites[role], cache_dir=cache_dir, batch_size=criteria.batch_size,
                               max_new_tokens=criteria.suite_max_new_tokens) if criteria.regression else None
        timings[f"{role}_loss_and_suite_s"] = time.perf_counter() - clock
        runs[role] = (outputs, losses, suite)
        del loaded
        gc.collect()
    (base_out, base_loss, base_suite), (tuned_out, tuned_loss, tuned_suite) = runs["base"], runs["tuned"]

    def resample(ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        def passes(role: str, spec: Any) -> dict[str, int]:
            return sampled_passes(spec, [item for item in suites[role] if item.id in set(ids)],
                                  batch_size=criteria.batch_size, max_new_tokens=criteria.suite_max_new_tokens)
        return passes("base", Path(base_dir)), passes("tuned", tuned_spec)

    comparison = compare(base_suite, tuned_suite, criteria.regression_threshold, criteria.nll_threshold,
                         resample=resample) if base_suite and tuned_suite else None
    result = judge_outputs(holdout_examples, base_out, tuned_out, train_targets, objective, criteria,
                           base_losses=base_loss, tuned_losses=tuned_loss, regression=comparison)
    if base_with_excerpts is not None and result.knowledge is not None:
        facts = holdout_facts(holdout_examples) or []
        sources = [str((ex.get("meta") or {}).get("source") or "?") for ex in holdout_examples]
        result.knowledge["base_with_excerpts"] = recall_by_source(
            [knowledge_recall(o, f) for o, f in zip(base_with_excerpts, facts, strict=True)], sources).to_dict()
    if comparison is not None:
        result.regression = {**comparison.to_dict(), "base_items": base_suite.items,
                             "tuned_items": tuned_suite.items}
    if criteria.judge:
        clock = time.perf_counter()
        requests = [_request_text(ex) for ex in holdout_examples]
        result.judge = judge_pairwise(requests, base_out, tuned_out).to_dict()
        timings["judge_s"] = time.perf_counter() - clock
    result.timings = {k: round(v, 2) for k, v in timings.items()}
    result.tuned_outputs = list(tuned_out)
    result.wall_seconds = round(time.perf_counter() - started, 2)
    return result
