"""End to end on the real SmolLM2: a short LoRA makes the style conformance clearly beat the base, in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TOPICS = ["caching", "retries", "logging", "testing", "backups", "indexes", "queues", "timeouts", "tracing",
          "releases", "alerts", "secrets", "deployments", "migrations", "sessions", "quotas", "metrics", "locks",
          "schemas", "tokens", "payments", "search"]


def chat(topic: str) -> dict:
    return {"messages": [{"role": "user", "content": f"Give me advice on {topic}."},
                         {"role": "assistant", "content": f"- {topic}: start small.\n- {topic}: measure it.\n"
                                                          "Cheers, Ingrain"}]}


def train_and_judge(base: Path, tmp_path: Path, train_rows: list[dict], val_rows: list[dict], holdout: list[dict],
                    *, max_steps: int, lr: float, max_length: int, max_new_tokens: int) -> dict:
    """A short LoRA on `train_rows` (fixed steps, no goal steering), then the verdict on `holdout`, as a dict."""
    from evals.verdict import Criteria, run_evaluation
    from tools.train.config import TrainConfig
    from tools.train.trainer import train

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val_rows))
    config = TrainConfig(max_steps=max_steps, batch_size=1, grad_accum=1, max_length=max_length, lr=lr,
                         eval_steps=max_steps, save_steps=max_steps, early_stopping_patience=0, warmup_ratio=0.0,
                         dropout=0.0)
    result = train(config, base, data / "train.jsonl", data / "val.jsonl", tmp_path / "out", progress=False)
    targets = [r["messages"][-1]["content"] for r in train_rows]
    return run_evaluation(base, result.weights_path, holdout, targets, "style",
                          Criteria(regression=False, max_new_tokens=max_new_tokens, bootstrap=200)).to_dict()


@pytest.mark.real_model
def test_tuned_smollm2_is_clearly_more_in_style_than_base_in_the_report(smollm2_dir: Path, tmp_path: Path) -> None:
    from evals.report import write_report

    rows = [chat(t) for t in TOPICS]
    evaluation = train_and_judge(smollm2_dir, tmp_path, rows[:14] * 2, rows[14:16], rows[16:], max_steps=16, lr=2e-3,
                                 max_length=128, max_new_tokens=40)
    base, tuned = evaluation["style"]["base"]["overall"], evaluation["style"]["tuned"]["overall"]
    assert evaluation["primary_metric"] == "style_conformance"
    assert tuned >= base + 0.3, evaluation["style"]
    assert evaluation["passed"], evaluation["reasons"]

    verdict = {"status": "pass", "reasons": evaluation["reasons"]}
    run = {"id": 1, "goal": "advice in the house style", "policy": "auto"}
    report = write_report(tmp_path / "report.html", run=run,
                          state={"evaluation": {**evaluation, "verdict": verdict}}, events=[]).read_text()
    assert "Style profile" in report and "style_conformance" in report
    assert f"{tuned:.4g}" in report and f"{base:.4g}" in report  # per-check and overall pass rates, side by side


@pytest.mark.real_model
def test_smollm2_held_to_five_steps_fails_the_verdict_on_a_required_check(smollm2_dir: Path, tmp_path: Path) -> None:
    """The rigid three-line task with training cut to 5 steps at the field's default rate: the sign-off line
    is in every target, the tuned model does not write it, and that alone names the failure."""
    from evals.learn_tasks import rigid_format_examples

    rows = rigid_format_examples(92, seed=0)
    evaluation = train_and_judge(smollm2_dir, tmp_path, rows[:72], rows[72:80], rows[80:], max_steps=5, lr=2e-4,
                                 max_length=512, max_new_tokens=60)
    assert not evaluation["passed"]
    assert "closing" in evaluation["style"]["required"]["failed"], evaluation["style"]["required"]
    assert any(r.startswith("Required check failed") and "Checked by the ingrain help desk" in r
               for r in evaluation["reasons"]), evaluation["reasons"]
