"""evaluate: base and tuned side by side on the sealed hold-out, plus the regression suite, to a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent.context import Context
from agent.state import State
from agent.trace import Tracer, traced
from evals.verdict import Criteria, nll_limit, run_evaluation
from tools.data import read_jsonl
from tools.deploy import GROUNDING_DIR
from tools.grounding import load_grounding
from tools.models import resolve_base
from tools.serve.routing import answers_agree

# Two models x this many generations fit a few minutes on two CPU cores (see README, Evaluation speed).
HOLDOUT_LIMIT = 32


@traced
def evaluate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "evaluate")
    base = resolve_base(state.spec["base_model"], runtime.context.workspace)
    # The hold-out is read here and nowhere in training.
    holdout = read_jsonl(state.dataset["test_path"])
    if len(holdout) > HOLDOUT_LIMIT:
        # The split is already a seeded random draw, so its head is an unbiased sample.
        trace.decision(f"evaluate {HOLDOUT_LIMIT} of {len(holdout)} hold-out examples",
                       "keeps evaluation within the plan's time; intervals widen accordingly")
        holdout = holdout[:HOLDOUT_LIMIT]
    train_targets = [ex["messages"][-1]["content"] for ex in read_jsonl(state.dataset["train_path"])]
    success = state.spec.get("success") or {}
    # An unstated improvement (0.0) keeps the default margin: "not worse" is not a reason to deploy.
    # Replies may run a little past the longest reference; decoding further only costs time.
    longest = max(len(ex["messages"][-1]["content"].split()) for ex in holdout)
    criteria = Criteria(margin=success.get("min_improvement") or Criteria.margin,
                        regression_threshold=success.get("max_regression") or Criteria.regression_threshold,
                        nll_threshold=nll_limit(state.spec["objective"]),
                        max_new_tokens=min(Criteria.max_new_tokens, max(32, int(longest * 1.6) + 8)))
    reference, against = _reference(base.path, runtime, trace)
    # Each model is asked as it is served: a knowledge run's model with its excerpts, production with its own.
    grounding = load_grounding(state.dataset.get("grounding_path"))
    reference_grounding = None if reference == base.path else load_grounding(reference.parent / GROUNDING_DIR)
    result = trace.tool("run_evaluation", run_evaluation, reference, state.training["weights_path"], holdout,
                        train_targets, state.spec["objective"], criteria,
                        runtime.context.workspace.root / "eval-cache", grounding=grounding,
                        base_grounding=reference_grounding).to_dict()
    primary = result["metrics"][result["primary_metric"]]
    verdict = {"status": "pass" if result["passed"] else "fail", "reasons": result["reasons"],
               "against": against}
    # How often a reply stands in for the reference by the proxy's own rule: for a distilled pattern the
    # references are the upstream's answers, so this is the agreement a route to the local model starts from.
    agreement = [answers_agree(out, ex["messages"][-1]["content"])
                 for out, ex in zip(result.pop("tuned_outputs"), holdout, strict=True)]
    summary = {"primary_metric": result["primary_metric"], "base_metric": primary["base"]["mean"],
               "tuned_metric": primary["tuned"]["mean"], "n_holdout": result["n_holdout"], "against": against,
               "agreement": round(sum(agreement) / len(agreement), 4) if agreement else None}
    trace.decision(f"verdict {verdict['status']} against {against}", "; ".join(verdict["reasons"]))
    return {"evaluation": {**result, "verdict": verdict, "summary": summary}}


def _reference(base_path: Path, runtime: Runtime[Context], trace: Tracer) -> tuple[Path, str]:
    """What the tuned model must beat: the base, or under the nightly policy the production version.

    A nightly candidate replaces production, so it is judged against production on the same hold-out and
    the same regression suite; a pass then means "better than what is served", never a regression.
    """
    if runtime.context.policy != "nightly":
        return base_path, "base"
    with runtime.context.store() as store:
        production = store.production_model()
    if production is None:
        trace.decision("judge against the base", "nothing is in production yet")
        return base_path, "base"
    if production["kind"] not in ("merged", "full") or not Path(production["path"]).is_dir():
        trace.decision("judge against the base", f"production {production['name']} is a {production['kind']} "
                       "version that cannot be loaded on its own")
        return base_path, "base"
    trace.decision(f"judge against production {production['name']}", "a nightly candidate must beat what is "
                   "served, on the same hold-out and regression suite, to be promoted")
    return Path(production["path"]), f"production {production['name']}"
