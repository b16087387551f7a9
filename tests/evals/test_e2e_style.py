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


@pytest.mark.real_model
def test_tuned_smollm2_is_clearly_more_in_style_than_base_in_the_report(smollm2_dir: Path, tmp_path: Path) -> None:
    from evals.report import write_report
    from evals.verdict import Criteria, run_evaluation
    from tools.train.config import TrainConfig
    from tools.train.trainer import train

    rows = [chat(t) for t in TOPICS]
    train_rows, val_rows, holdout = rows[:14], rows[14:16], rows[16:]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows * 2))
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val_rows))
    config = TrainConfig(max_steps=16, batch_size=1, grad_accum=1, max_length=128, lr=2e-3, eval_steps=8,
                         save_steps=8, early_stopping_patience=0, warmup_ratio=0.0, dropout=0.0)
    result = train(config, smollm2_dir, data / "train.jsonl", data / "val.jsonl", tmp_path / "out", progress=False)

    targets = [r["messages"][-1]["content"] for r in train_rows]
    evaluation = run_evaluation(smollm2_dir, result.weights_path, holdout, targets, "style",
                                Criteria(regression=False, max_new_tokens=40, bootstrap=200)).to_dict()
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
    from evals.verdict import Criteria, run_evaluation
    from tools.train.config import TrainConfig
    from tools.train.trainer import train

    rows = rigid_format_examples(92, seed=0)
    train_rows, val_rows, holdout = rows[:72], rows[72:80], rows[80:]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val_rows))
    config = TrainConfig(max_steps=5, batch_size=1, grad_accum=1, max_length=512, lr=2e-4, eval_steps=5,
                         save_steps=5, early_stopping_patience=0, warmup_ratio=0.0, dropout=0.0)
    result = train(config, smollm2_dir, data / "train.jsonl", data / "val.jsonl", tmp_path / "out", progress=False)
    targets = [r["messages"][-1]["content"] for r in train_rows]
    evaluation = run_evaluation(smollm2_dir, result.weights_path, holdout, targets, "style",
                                Criteria(regression=False, max_new_tokens=60, bootstrap=200)).to_dict()
    assert not evaluation["passed"]
    assert "closing" in evaluation["style"]["required"]["failed"], evaluation["style"]["required"]
    assert any(r.startswith("Required check failed") and "Checked by the ingrain help desk" in r
               for r in evaluation["reasons"]), evaluation["reasons"]
