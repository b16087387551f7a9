"""Knowledge recall: a reply holds the fact or it does not; recall per source document."""

from __future__ import annotations

import pytest

from evals.knowledge import knowledge_recall, recall_by_source, score_knowledge
from tools.errors import ToolError


@pytest.mark.parametrize(("output", "answer", "expected"), [
    ("The Riverside office opens at 7:45 on weekdays.", "7:45", 1.0),
    ("It opens at 7.45.", "7:45", 1.0),  # the same time written with a dot normalises the same
    ("It opens at 17:45.", "7:45", 0.0),  # whole words only: 1745 is not 745
    ("It opens at eight.", "7:45", 0.0),
    ("Ask dana whitfield, she signs them.", "Dana Whitfield", 1.0),
    ("Ask Dana.", "Dana Whitfield", 0.0),  # a short answer must be there whole
    # a longer answer may be restated: 4 of its 5 words is enough ...
    ("A letter from your GP confirming the illness.", "a letter from a doctor confirming illness", 1.0),
    # ... but half of them is not
    ("Employees may share their badge.", "Employees must never share their badge", 0.0),
])
def test_recall_is_one_only_when_the_reply_holds_the_fact(output: str, answer: str, expected: float) -> None:
    assert knowledge_recall(output, answer) == expected


def test_token_recall_threshold_is_a_parameter() -> None:
    reply, fact = "Employees may share their badge.", "Employees must never share their badge"
    assert knowledge_recall(reply, fact) == 0.0
    assert knowledge_recall(reply, fact, min_token_recall=0.6) == 1.0


def test_recall_per_source_names_the_page_the_model_did_not_learn() -> None:
    result = recall_by_source([1.0, 1.0, 0.0, 1.0, 0.0, 0.0], ["a.md", "a.md", "b.md", "b.md", "c.md", "c.md"])
    assert result.n == 6 and result.recall == pytest.approx(0.5)
    assert result.by_source == {"a.md": {"recall": 1.0, "n": 2}, "b.md": {"recall": 0.5, "n": 2},
                                "c.md": {"recall": 0.0, "n": 2}}
    assert result.weakest(2) == ["c.md", "b.md"]
    assert result.to_dict()["by_source"]["b.md"]["recall"] == 0.5


def test_score_knowledge_reads_fact_and_source_from_the_holdout_meta() -> None:
    holdout = [
        {"messages": [{"role": "user", "content": "When does the Riverside office open?"}],
         "meta": {"answer": "7:45", "source": "offices.md"}},
        {"messages": [{"role": "user", "content": "Who approves travel?"}],
         "meta": {"answer": "Dana Whitfield", "source": "travel.md"}},
    ]
    result = score_knowledge(["At 7:45 on weekdays.", "The travel desk does."], holdout)
    assert result.recall == 0.5
    assert result.by_source["offices.md"]["recall"] == 1.0 and result.by_source["travel.md"]["recall"] == 0.0


def test_mismatched_or_empty_inputs_fail_with_what_to_do() -> None:
    with pytest.raises(ToolError, match="empty fact answer"):
        knowledge_recall("anything", "  ...  ")
    with pytest.raises(ToolError, match="score every hold-out question once"):
        recall_by_source([1.0], ["a.md", "b.md"])
    with pytest.raises(ToolError, match="hold-out is empty"):
        recall_by_source([], [])
