"""Training examples from the usage log: corrections replace bad replies, rated-down replies teach nothing."""

from __future__ import annotations

import json

from memory import feedback, usage
from memory.store import Store
from tools.data import read_jsonl
from tools.data.from_log import examples_from_log

SYSTEM = "You triage messages for a bicycle shop. " * 10


def _row(i: int, **extra) -> dict:
    return {"id": f"r{i}", "ts": 1000.0 + i, "status": "ok", "system_prompt": SYSTEM, "source": "upstream",
            "messages": [{"role": "user", "content": f"my chain broke on ride {i}"}],
            "response": f"Category: repair\nticket {i}", **extra}


def test_examples_follow_feedback_and_drop_what_cannot_teach(workspace, tmp_path) -> None:
    rows = [_row(i) for i in range(30)]
    rows[1].update(status="error", response=None)
    rows[2].update(partial=1)
    rows[3].update(messages=None, response=None)  # logged with --log-content none
    rows[4].update(source="local")
    rows.append({**_row(0), "id": "r0-again", "ts": 2000.0, "response": "Category: repair\nnewer"})
    with Store.open(workspace) as store:
        usage.log_requests(store, rows)
        feedback.add_feedback(store, "r5", rating=-1)
        feedback.add_feedback(store, "r6", rating=-1, correction="Category: sales\nfixed")
        feedback.add_feedback(store, "r7", rating=-1)
        feedback.add_feedback(store, "r7", rating=1)  # contradictory: the latest rating counts
        result = examples_from_log(store, [r["id"] for r in rows] + ["nope"], tmp_path / "ex.jsonl",
                                   strip_system=True, min_examples=10)
    assert result.skipped == {"not_ok": 1, "partial": 1, "no_content": 1, "rated_down": 1, "missing": 1,
                              "duplicate": 1}
    assert result.sources == {"upstream": 24, "local": 1, "correction": 1}
    examples = read_jsonl(result.path)
    assert len(examples) == result.n_examples == 26 and result.too_small is None
    by_user = {ex["messages"][0]["content"]: ex["messages"][-1]["content"] for ex in examples}
    assert by_user["my chain broke on ride 6"] == "Category: sales\nfixed"
    assert by_user["my chain broke on ride 0"].endswith("newer")  # the later answer to the same input wins
    assert "my chain broke on ride 5" not in by_user and "my chain broke on ride 7" in by_user
    assert all(ex["messages"][0]["role"] == "user" for ex in examples)  # the baked system prompt is gone


def test_keeping_the_system_prompt_and_reporting_a_pattern_too_small(workspace, tmp_path) -> None:
    with Store.open(workspace) as store:
        usage.log_requests(store, [_row(i) for i in range(5)])
        kept = examples_from_log(store, [f"r{i}" for i in range(5)], tmp_path / "a.jsonl", min_examples=5)
        assert kept.n_examples == 5
        small = examples_from_log(store, [f"r{i}" for i in range(5)], tmp_path / "b.jsonl")
    first = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "system", "content": SYSTEM}
    assert small.path is None and "only 5 usable examples" in small.too_small
    assert not (tmp_path / "b.jsonl").exists()
