"""End to end on SmolLM2: a folder of made-up handbook pages (so the base cannot know them) goes through
`ingrain run "Put the contents of DIR into a model ..." --policy auto`, and the deployed model, asked questions
in wordings of their own about facts past each page's opening, through the endpoint, answers with the facts.

The CI-sized run of bench/knowledge_recall.py (4 pages, 20 questions, 10 minutes); the bench runs 8 pages in 20.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evals.generate import generate_replies
from evals.knowledge import knowledge_recall
from memory import Store
from tests.support.endpoint import ask_all
from tests.support.handbook import PAGES, seen_in_training, write_pages
from tools.grounding import load_grounding
from tools.serve.config import ServeConfig
from tools.serve.server import bound_port, running_server

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

BUDGET_MINUTES = 10
PAGE_COUNT = 4


def recalled(replies: list[str], questions: list[dict]) -> int:
    return int(sum(knowledge_recall(r, q["fact"]) for r, q in zip(replies, questions, strict=True)))


def test_a_folder_of_pages_becomes_a_deployed_model_that_answers_questions_about_them(workspace, smollm2_dir,
                                                                                     tmp_path) -> None:
    folder = tmp_path / "handbook"
    questions = write_pages(folder, PAGES[:PAGE_COUNT])
    asked = [q["messages"][0]["content"] for q in questions]
    with running_server(ServeConfig(port=0), workspace) as server:
        before = ask_all(f"http://127.0.0.1:{bound_port(server)}", asked, max_tokens=96)
    assert recalled(before, questions) <= 2, before  # the base does not know the made-up facts

    goal = f"Put the contents of {folder} into a model so it can answer questions about it"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "agent.cli", "run", goal, "--policy", "auto", "--budget-minutes",
                           str(BUDGET_MINUTES), "--json"], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "INGRAIN_HOME": str(workspace.root)})
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert not seen_in_training(questions, workspace.root)  # recall is measured on wordings the run never trained on
    if outcome["verdict"] != "pass":
        # The known limit (README, Limits): training keeps only weights that pass the regression suite, and in some
        # CI-sized runs every checkpoint that learned the facts well lost suite items (one kept step 38, whose
        # hold-out recall was 4/9, under the verdict's half). Then the verdict says why, nothing is deployed,
        # and the kept weights must still hold facts the base does not know (it answers at most 2); the test
        # reports an expected failure, so it shows, and turns green only when the run delivers.
        assert not outcome["model"], outcome
        assert "Regression: general pass rate fell" in outcome["message"] \
            or "a knowledge goal needs at least" in outcome["message"], outcome
        with Store.open(workspace) as store:
            assert store.production_model() is None
        adapter = next(workspace.root.glob("runs/*/train/adapter"))
        index = load_grounding(adapter.parents[2] / "grounding", workspace.root / "cache" / "wordllama")
        trained = generate_replies((smollm2_dir, adapter), index.ground([q["messages"][:1] for q in questions]),
                                   max_new_tokens=96, batch_size=len(questions))
        learned = recalled(trained, questions)
        assert learned >= 8, list(zip([q["fact"] for q in questions], trained, strict=True))
        pytest.xfail(f"the kept weights answer {learned}/{len(questions)} but the verdict failed, so nothing was "
                     f"deployed: {outcome['message'][:300]}")
    assert outcome["model"], outcome

    with running_server(ServeConfig(port=0), workspace) as server:
        after = ask_all(f"http://127.0.0.1:{bound_port(server)}", asked, max_tokens=96)
    with Store.open(workspace) as store:
        production = store.production_model()
    print(f"\nknowledge run {wall:.0f} s; facts recalled: base {recalled(before, questions)}/{len(questions)}, "
          f"deployed {recalled(after, questions)}/{len(questions)}", file=sys.stderr)
    assert production["name"] == outcome["model"]
    # The version carries the excerpt index it was trained and judged with; the endpoint asked with it.
    assert load_grounding(Path(production["path"]).parent / "grounding", workspace.root / "cache" / "wordllama")
    # 34/40 is the bar at the bench's size; grounded, the bench's deployed model answered 36/40.
    assert recalled(after, questions) >= 16, list(zip([q["fact"] for q in questions], after, strict=True))
    assert wall <= BUDGET_MINUTES * 60 * 1.15, f"the run took {wall:.0f} s for a {BUDGET_MINUTES}-minute budget"
