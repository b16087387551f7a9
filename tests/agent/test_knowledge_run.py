"""A knowledge goal on a folder of pages, through the graph on the tiny model: every passage becomes
questions, the hold-out asks about facts from every page in another phrasing, and the verdict is recall."""

from __future__ import annotations

import json
from pathlib import Path

from agent import runner
from memory import Store
from tools.data import read_jsonl
from tools.grounding import HEADER, load_grounding, question_of
from tools.train.config import KNOWLEDGE_RECALL_WEIGHT

PAGES = {
    "office.md": "# Riverside office\n\nThe Riverside office opens at 7:45 on weekdays. Visitors must sign in at "
                 "the blue desk. The office closes at 18:30 on Fridays.\n\n## Parking\n\nStaff may park in "
                 "level 3 of the Quay garage. The garage charges 4 euros per day for visitors.\n",
    "leave.md": "# Leave\n\nEvery employee gets 27 days of paid leave per year. Sick leave must be reported "
                "to Marta Ilves before 9:00. Unused leave expires on 31 March.\n\n## Parental leave\n\nParents "
                "receive 16 weeks of paid parental leave. The request form is called PL-2.\n",
    "tools.md": "# Tools\n\nThe build server is called Heron. Heron runs the nightly tests at 02:10. Access "
                "requests go to the Kestrel team. Passwords must be rotated every 90 days.\n",
}


def test_a_knowledge_goal_trains_on_every_fact_and_is_judged_by_recall(tmp_path, tiny_model_dir) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    for name, text in PAGES.items():
        (folder / name).write_text(text)
    outcome = runner.start(f"Put the contents of {folder} into a model so it can answer questions about it",
                           base=str(tiny_model_dir), policy="auto", budget_minutes=20)
    assert outcome.exit_code == 0, outcome.message
    with Store.open() as store:
        events = store.events(outcome.run_id)
    tools = [e["name"] for e in events if e["kind"] == "tool_call"]
    assert {"chunk_documents", "build_knowledge", "split_with_holdout"} <= set(tools)
    data = Path(store.path).parent / "runs" / str(outcome.run_id) / "data"
    train, val = read_jsonl(data / "train.jsonl"), read_jsonl(data / "val.jsonl")
    holdout = read_jsonl(data / "holdout" / "test.jsonl")
    # Every page is asked about, with the fact to look for, in questions training never saw.
    assert {Path(ex["meta"]["source"]).name for ex in holdout} == set(PAGES)
    asked = {ex["messages"][0]["content"] for ex in holdout}
    assert not asked & {question_of(ex["messages"][0]["content"]) for ex in train + val}
    # Training and validation questions carry the excerpts the deployed model is asked with; the hold-out is
    # stored as users ask it, and the evaluation grounds it as serving does.
    # (a request far from every sentence, such as "Sum up Tools in a few sentences", is left as it is).
    grounded = [ex["messages"][0]["content"].startswith(HEADER) for ex in train + val]
    assert sum(grounded) >= 0.9 * len(grounded), (sum(grounded), len(grounded))
    assert not any(q.startswith(HEADER) for q in asked)
    index = load_grounding(data.parent / "grounding", tmp_path)
    assert index is not None and "Heron runs the nightly tests at 02:10." in {p["text"] for p in index.passages}
    # Validation asks reworded questions its facts never train on in that kind (they still train in others),
    # or, for facts without one, spare rephrasings of a kind they keep.
    assert val and {ex["meta"]["kind"] for ex in val} <= {"reworded", "paraphrase"}
    for ex in val:
        kinds = {t["meta"]["kind"] for t in train if t["meta"]["fact_id"] == ex["meta"]["fact_id"]}
        assert ("reworded" not in kinds) if ex["meta"]["kind"] == "reworded" else ("paraphrase" in kinds), kinds
        assert kinds & {"factual", "paraphrase"}, kinds
    # Facts after each page's opening are trained on, not only the first sentence.
    answers = " ".join(ex["messages"][-1]["content"] for ex in train)
    for fact in ("18:30", "4 euros", "31 March", "PL-2", "02:10", "90 days"):
        assert fact in answers, fact
    # The plan built the same offline data to size the budget: its estimate is what training gets.
    preview = next(e for e in events if e["kind"] == "tool_call" and e["name"] == "preview_knowledge_data")
    planned = preview["data"]["result"]["examples"]
    assert planned == len(train), (planned, len(train))
    evaluation = next(e for e in events if e["kind"] == "decision" and e["node"] == "evaluate"
                      and e["name"].startswith("verdict"))
    assert "knowledge_recall" in evaluation["data"]["reason"]
    result = next(e for e in events if e["kind"] == "tool_call" and e["name"] == "run_evaluation")["data"]["result"]
    assert {"base", "tuned", "base_with_excerpts"} <= set(result["knowledge"])
    # The sweep trial and the final run weigh the tokens an answer must recall above the ones it can copy.
    run = data.parent
    for result in (run / "train" / "train_result.json", *run.glob("sweep/trial-*/train_result.json")):
        assert json.loads(result.read_text())["config"]["recall_weight"] == KNOWLEDGE_RECALL_WEIGHT, result
