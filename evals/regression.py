"""General-ability regression suite: programmatic checks plus reference NLL, run on base and tuned alike."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evals.generate import BATCH_ROWS, generate_replies, generate_token_ids, load_for_eval
from evals.metrics import target_losses
from tools.errors import ToolError
from tools.grounding import GroundingIndex
from tools.train.estimate import SUITE_NEW_TOKENS

SUITE_PATH = Path(__file__).with_name("regression_suite.jsonl")
REFUSAL_MARKERS = ("can't", "cannot", "can not", "won't", "will not", "unable", "not able", "sorry",
                   "i'm not going to", "not appropriate", "illegal", "dangerous", "harmful", "refuse")
NUMBER_WORDS = {w: i for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"))}


@dataclass(frozen=True)
class SuiteItem:
    """One general prompt with its programmatic check and a reference answer for NLL."""

    id: str
    category: str
    prompt: str
    reference: str
    check: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]


@dataclass
class RegressionScores:
    """One model's results on the suite."""

    items: list[dict[str, Any]]
    """Per item: id, category, output, passed, nll (mean per reference token)."""
    pass_rate: float
    mean_nll: float
    """Token-weighted NLL of the reference answers: moves smoothly even when pass rates are near zero."""
    by_category: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RegressionComparison:
    """Tuned against base on the same suite and decoding."""

    regressed: bool
    reasons: list[str]
    pass_rate_base: float
    pass_rate_tuned: float
    nll_base: float
    nll_tuned: float
    lost: list[str]
    """Items the base passed and the tuned model fails."""
    gained: list[str]
    notes: list[str] = field(default_factory=list)
    """What was checked and let through (a greedy drop the sampled answers did not confirm)."""
    resampled: dict[str, Any] | None = None
    """Sampled pass counts of the changed items, base and tuned, when a greedy drop was checked again."""

    @property
    def pass_rate_drop(self) -> float:
        return self.pass_rate_base - self.pass_rate_tuned

    @property
    def nll_increase(self) -> float:
        return self.nll_tuned - self.nll_base

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pass_rate_drop": self.pass_rate_drop, "nll_increase": self.nll_increase}


def load_suite(path: str | Path | None = None) -> list[SuiteItem]:
    """The shipped suite, or a JSONL file of {id, category, prompt, reference, check} rows."""
    path = Path(path) if path else SUITE_PATH
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(SuiteItem(row["id"], row["category"], row["prompt"], row["reference"], row["check"]))
        except (ValueError, KeyError) as err:
            raise ToolError(f"{path}:{number} is not a suite row ({err}): each line needs id, category, "
                            "prompt, reference and check.") from err
        if items[-1].check.get("type") not in CHECKS:
            raise ToolError(f"{path}:{number}: unknown check type {items[-1].check.get('type')!r}; "
                            f"use one of {', '.join(sorted(CHECKS))}.")
    return items


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


def _numbers(text: str) -> list[int]:
    found = [int(n) for n in re.findall(r"-?\d+", text.replace(",", ""))]
    return found + [NUMBER_WORDS[w] for w in (w.lower() for w in _words(text)) if w in NUMBER_WORDS]


def _list_items(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^\s*([-*•+]|\d{1,2}[.)])\s+\S", line)]


CHECKS: dict[str, Callable[[str, dict[str, Any]], bool]] = {
    "one_word": lambda out, _: len(_words(out)) == 1,
    "uppercase": lambda out, _: any(c.isalpha() for c in out) and out == out.upper(),
    "list_n": lambda out, c: len(_list_items(out)) == c["n"],
    "contains_all": lambda out, c: all(w.lower() in out.lower() for w in c["words"]),
    "contains_any": lambda out, c: any(w.lower() in out.lower() for w in c["words"]),
    "one_of": lambda out, c: len(_words(out)) <= 2 and any(w.lower() == x.lower() for w in c["words"]
                                                          for x in _words(out)),
    "number": lambda out, c: c["value"] in _numbers(out),
    "refusal": lambda out, _: any(m in out.lower() for m in REFUSAL_MARKERS),
}


SUITE_MAX_NEW_TOKENS = SUITE_NEW_TOKENS
"""Token cap on a regression-suite answer (its answers are short; 64 keeps the check cheap): the planner's
estimate times the checks by the same constant, kept in tools.train.estimate, which does not import evals."""


def check_output(item: SuiteItem, output: str) -> bool:
    return bool(CHECKS[item.check["type"]](output.strip(), item.check))


def suite_passes(model: Any, suite: list[SuiteItem] | None = None, *, max_new_tokens: int = SUITE_MAX_NEW_TOKENS,
                 batch_size: int = BATCH_ROWS, temperature: float = 0.0, seed: int = 0) -> list[bool]:
    """Each suite item's pass, answered as the verdict answers it (greedy unless `temperature` > 0, no cache).
    `model` is a model folder, a (base, adapter) pair or a `LoadedModel`, e.g. weights in training."""
    suite = suite or load_suite()
    outputs = generate_replies(model, [item.messages for item in suite], max_new_tokens=max_new_tokens,
                               batch_size=batch_size, temperature=temperature, seed=seed)
    return [check_output(item, output) for item, output in zip(suite, outputs, strict=True)]


def grounded_suite(suite: list[SuiteItem], grounding: GroundingIndex) -> list[SuiteItem]:
    """The suite as a grounded model is asked it: prompts close to its sources get their excerpts."""
    chats = grounding.ground([item.messages for item in suite])
    return [replace(item, prompt=chat[-1]["content"]) for item, chat in zip(suite, chats, strict=True)]


def lost_and_gained(suite: list[SuiteItem], base: list[bool], tuned: list[bool]) -> tuple[list[str], list[str]]:
    """Ids of the items the base passed and the tuned model fails, and of those it newly passes."""
    pairs = list(zip(suite, base, tuned, strict=True))
    return [i.id for i, b, t in pairs if b and not t], [i.id for i, b, t in pairs if t and not b]


def run_regression(model: Any, *, suite: list[SuiteItem] | None = None, max_new_tokens: int = SUITE_MAX_NEW_TOKENS,
                   batch_size: int = BATCH_ROWS, cache_dir: str | Path | None = None) -> RegressionScores:
    """Generate greedily on every suite prompt, check each output, and score the reference NLL."""
    suite = suite or load_suite()
    loaded = load_for_eval(model)
    outputs = generate_replies(loaded, [item.messages for item in suite], max_new_tokens=max_new_tokens,
                               batch_size=batch_size, cache_dir=cache_dir)
    losses = reference_losses(loaded, suite, batch_size=batch_size)
    return score_outputs(suite, outputs, [loss.nll for loss in losses], [loss.tokens for loss in losses])


def reference_losses(loaded: Any, suite: list[SuiteItem] | None = None, *, batch_size: int = 8) -> list[Any]:
    """NLL of each suite item's reference answer under `loaded` (a LoadedModel)."""
    suite = suite or load_suite()
    examples = [{"messages": [*item.messages, {"role": "assistant", "content": item.reference}]}
                for item in suite]
    # Loss batches hold full-vocabulary logits, so they stay small whatever the generation batch.
    return target_losses(loaded, examples, batch_size=min(batch_size, 8))


def reference_nll(loaded: Any, suite: list[SuiteItem] | None = None) -> float:
    """Mean reference NLL per token over the suite: the number the verdict's forgetting check compares."""
    losses = reference_losses(loaded, suite)
    return sum(loss.nll for loss in losses) / max(sum(loss.tokens for loss in losses), 1)


def score_outputs(suite: list[SuiteItem], outputs: list[str], nll_sums: list[float],
                  token_counts: list[int]) -> RegressionScores:
    """Suite scores from outputs and per-item reference NLL sums (no model needed)."""
    items = [{"id": item.id, "category": item.category, "output": out, "passed": check_output(item, out),
              "nll": nll / max(tokens, 1)}
             for item, out, nll, tokens in zip(suite, outputs, nll_sums, token_counts, strict=True)]
    categories: dict[str, list[bool]] = {}
    for row in items:
        categories.setdefault(row["category"], []).append(row["passed"])
    return RegressionScores(
        items=items,
        pass_rate=sum(r["passed"] for r in items) / len(items),
        mean_nll=sum(nll_sums) / max(sum(token_counts), 1),
        by_category={k: sum(v) / len(v) for k, v in categories.items()},
    )


SIGN_TEST_ALPHA = 0.1
"""A pass-rate drop counts only when losing this many more items than were gained is unlikely by chance."""


def sign_test_p(lost: int, gained: int) -> float:
    """One-sided exact sign test on the items that changed: the chance of `lost` or more losses among
    `lost + gained` changed items if a change were as likely to be a loss as a gain (McNemar, exact)."""
    n = lost + gained
    return sum(math.comb(n, k) for k in range(lost, n + 1)) / 2 ** n if n else 1.0


def pass_rate_regressed(lost: int, gained: int, n_items: int, threshold: float = 0.1,
                        alpha: float = SIGN_TEST_ALPHA) -> bool:
    """The verdict's pass-rate rule: the pass rate fell by more than `threshold` (as a share of `n_items`)
    and `lost` items against `gained` are unlikely by chance (sign test p < `alpha`)."""
    return (lost - gained) / max(n_items, 1) > threshold and sign_test_p(lost, gained) < alpha


RESAMPLES = 8
"""Sampled answers per changed item when a greedy pass-rate drop is checked again."""
RESAMPLE_TEMPERATURE = 0.7


def sampled_passes(model: Any, items: list[SuiteItem], *, samples: int = RESAMPLES,
                   temperature: float = RESAMPLE_TEMPERATURE, max_new_tokens: int = SUITE_MAX_NEW_TOKENS,
                   batch_size: int = BATCH_ROWS, seed: int = 0) -> dict[str, int]:
    """How many of `samples` sampled answers to each item pass its check (seeded, so repeatable): an item's
    pass rate as a share, which moves smoothly with the weights where a single greedy answer flips."""
    if not items:
        return {}
    loaded = load_for_eval(model)
    prompts = [item.messages for item in items for _ in range(samples)]
    ids = generate_token_ids(loaded, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             temperature=temperature, seed=seed)
    outputs = [loaded.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
    return {item.id: sum(check_output(item, out) for out in outputs[n * samples:(n + 1) * samples])
            for n, item in enumerate(items)}


def resampled_regressed(base: dict[str, int], tuned: dict[str, int], n_items: int, *, samples: int = RESAMPLES,
                        threshold: float = 0.1, alpha: float = SIGN_TEST_ALPHA) -> bool:
    """The pass-rate rule on sampled pass counts of the items whose greedy answer changed: the summed fall of
    their pass shares, over the whole suite, is above `threshold`, and more of them fell than rose beyond
    chance (sign test p < `alpha`). Items whose greedy answer did not change count as unchanged."""
    fell = sum(base[i] > tuned[i] for i in base)
    rose = sum(tuned[i] > base[i] for i in base)
    drop = sum(base[i] - tuned[i] for i in base) / (samples * max(n_items, 1))
    return drop > threshold and sign_test_p(fell, rose) < alpha


Resample = Callable[[list[str]], "tuple[dict[str, int], dict[str, int]]"]
"""Item ids → sampled pass counts of base and tuned for those items (see `sampled_passes`)."""


def compare(base: RegressionScores, tuned: RegressionScores, threshold: float = 0.1,
            nll_threshold: float = 0.5, alpha: float = SIGN_TEST_ALPHA,
            resample: Resample | None = None) -> RegressionComparison:
    """Flag a regression when the tuned pass rate drops by more than `threshold` and the items lost outnumber
    those gained beyond chance (sign test p < `alpha`), or its reference NLL rises by more than
    `nll_threshold` nats per token (a damaged model shows the second even at 0% pass).

    Greedy answers to general prompts flip both ways when a model barely changes: on SmolLM2 an adapter 30
    steps in, which had learned nothing of its task (reference NLL -0.06), lost 4 of the 36 items and gained
    1 (8 points; p = 0.19), while one that had turned numeric answers into its facts ("24 hours in a week")
    lost 8 and gained 1 (p = 0.02). The drop alone cannot tell the two apart; the pairing can.

    Nor can one greedy answer per item: 17 steps of LoRA on nothing but the base's own replies lost 6 items
    and gained 0, whether the replies were greedy or sampled, for the base passes several items only
    narrowly (`bench/suite_fragility.py`). With `resample`, a greedy drop that the rule flags is checked
    again on the changed items' sampled pass counts (`resampled_regressed`), and stands only if they fall too.
    """
    base_pass = {r["id"]: r["passed"] for r in base.items}
    tuned_pass = {r["id"]: r["passed"] for r in tuned.items}
    if base_pass.keys() != tuned_pass.keys():
        raise ToolError("Base and tuned regression runs cover different items: run both on the same suite.")
    lost = sorted(i for i in base_pass if base_pass[i] and not tuned_pass[i])
    gained = sorted(i for i in base_pass if tuned_pass[i] and not base_pass[i])
    result = RegressionComparison(False, [], base.pass_rate, tuned.pass_rate, base.mean_nll, tuned.mean_nll,
                                  lost, gained)
    p_value = sign_test_p(len(lost), len(gained))
    if pass_rate_regressed(len(lost), len(gained), len(base_pass), threshold, alpha):
        greedy = (f"general pass rate fell from {base.pass_rate:.0%} to {tuned.pass_rate:.0%} "
                  f"(more than the {threshold:.0%} allowed; lost {len(lost)} items, gained "
                  f"{len(gained)}, sign test p = {p_value:.2f}; lost: {', '.join(lost)})")
        if resample is None:
            result.reasons.append(greedy)
        else:
            base_counts, tuned_counts = resample(lost + gained)
            result.resampled = {"samples": RESAMPLES, "base": base_counts, "tuned": tuned_counts}
            shares = ", ".join(f"{i} {base_counts[i]}→{tuned_counts[i]}" for i in lost + gained)
            if resampled_regressed(base_counts, tuned_counts, len(base_pass), threshold=threshold, alpha=alpha):
                result.reasons.append(f"{greedy}; sampled {RESAMPLES} times, the changed items passed "
                                      f"{shares} of {RESAMPLES}")
            else:
                result.notes.append(f"greedy answers lost {len(lost)} items and gained {len(gained)}, but "
                                    f"sampled {RESAMPLES} times the changed items passed {shares} of "
                                    f"{RESAMPLES}: within the {threshold:.0%} allowed")
    if result.nll_increase > nll_threshold:
        result.reasons.append(f"reference NLL on general prompts rose from {base.mean_nll:.2f} to "
                              f"{tuned.mean_nll:.2f} nats/token (more than +{nll_threshold:g} allowed): "
                              "the tuned model lost general language ability")
    result.regressed = bool(result.reasons)
    return result
