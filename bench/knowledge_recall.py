"""Does a knowledge goal put the facts of a folder into the model? Side by side in one run:

  base:    the default model asked the questions through `ingrain serve` before anything is trained;
  ingrain: `ingrain run "Put the contents of DIR into a model so it can answer questions about it"
           --policy auto --budget-minutes B`, then the deployed model asked the same questions.

The pages are made up (so the base cannot know them): 8 pages of 6 facts each, every fact a sentence with
one answer (a time, a number, a name). The 40 questions ask about facts after each page's first sentence,
in wordings of their own. A reply counts when it holds the fact (evals.knowledge.knowledge_recall).

Usage:  .venv/bin/python bench/knowledge_recall.py [--budget-minutes 20] [--pages 8] [--teacher]

--pages 4 --budget-minutes 10 is the CI-sized run (20 questions) the end-to-end test is meant to make.

With --teacher, a stand-in teacher on loopback (tests.support.handbook.handbook_teacher) writes the questions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.learn_quality import INGRAIN, ask_endpoint  # noqa: E402
from evals.knowledge import knowledge_recall  # noqa: E402
from tests.support.fake_upstream import FakeUpstream  # noqa: E402
from tests.support.handbook import PAGES, handbook_teacher, seen_in_training, write_pages  # noqa: E402


def score(replies: list[str], questions: list[dict]) -> int:
    return int(sum(knowledge_recall(r, q["fact"]) for r, q in zip(replies, questions, strict=True)))


def candidate_score(home: Path, questions: list[dict]) -> int | None:
    """What the run's trained adapter, which the verdict kept from deployment, answers (greedy, in-process):
    so a failed verdict still tells whether the facts were learned."""
    from evals.generate import generate_replies
    from tools.grounding import load_grounding

    adapters = sorted(home.glob("runs/*/train/adapter"))
    bases = sorted(p.parent for p in home.glob("models/*/model.safetensors"))
    if not adapters or not bases:
        return None
    asked = [q["messages"][:1] for q in questions]
    index = load_grounding(adapters[-1].parents[2] / "grounding", home / "cache" / "wordllama")
    replies = generate_replies((bases[0], adapters[-1]), index.ground(asked) if index else asked,
                               max_new_tokens=64, batch_size=20)
    return score(replies, questions)


def base_with_excerpts(home: Path, questions: list[dict]) -> int | None:
    """What the untrained base answers given the same excerpts the deployment puts above each question: how much
    of the deployed recall the excerpts alone give."""
    from evals.generate import generate_replies
    from tools.grounding import load_grounding

    folders = sorted(home.glob("versions/*/grounding"))
    bases = sorted(p.parent for p in home.glob("models/*/model.safetensors"))
    index = load_grounding(folders[-1], home / "cache" / "wordllama") if folders else None
    if index is None or not bases:
        return None
    replies = generate_replies(bases[0], index.ground([q["messages"][:1] for q in questions]), max_new_tokens=64,
                               batch_size=20)
    return score(replies, questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-minutes", type=float, default=20)
    parser.add_argument("--pages", type=int, default=len(PAGES), help=f"handbook pages to use (1-{len(PAGES)})")
    parser.add_argument("--teacher", action="store_true",
                        help="write the questions with a teacher on loopback (tests.support.handbook)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingrain-knowledge-"))
    home, folder = work / "home", work / "handbook"
    questions = write_pages(folder, PAGES[:args.pages])
    env = {**os.environ, "INGRAIN_HOME": str(home)}
    print(f"{len(questions)} questions about {args.pages} pages (work in {work})", flush=True)
    base = ask_endpoint(home, questions)
    print(f"base     {score(base, questions):>2}/{len(questions)}", flush=True)
    started = time.time()
    goal = f"Put the contents of {folder} into a model so it can answer questions about it"
    with contextlib.ExitStack() as stack:
        if args.teacher:
            teacher = stack.enter_context(FakeUpstream(answer=handbook_teacher))
            env["INGRAIN_TEACHER_BASE_URL"] = teacher.url
        done = subprocess.run([*INGRAIN, "run", goal, "--policy", "auto", "--budget-minutes",
                               str(args.budget_minutes), "--json"], env=env, capture_output=True, text=True)
        if args.teacher:
            print(f"teacher   {len(teacher.chat_requests())} requests", flush=True)
    wall = time.time() - started
    outcome = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {"error": done.stderr[-2000:]}
    seen = seen_in_training(questions, home)
    if seen:
        print(f"WARNING: {len(seen)} of the questions are in the run's training data word for word, so recall "
              f"overstates what the model does with unseen wordings: {seen}", flush=True)
    if not outcome.get("model"):
        print(f"ingrain  not deployed ({outcome.get('verdict') or outcome.get('error')}) in {wall:.0f} s")
        candidate = candidate_score(home, questions)
        if candidate is not None:
            print(f"         its trained weights, asked in-process: {candidate}/{len(questions)}")
        return
    tuned = ask_endpoint(home, questions)
    print(f"ingrain  {score(tuned, questions):>2}/{len(questions)} in {wall:.0f} s (verdict {outcome['verdict']})")
    if (excerpts := base_with_excerpts(home, questions)) is not None:
        print(f"base given the deployment's excerpts (in-process, untrained): {excerpts}/{len(questions)}")
    missed = [(q, reply) for q, reply in zip(questions, tuned, strict=True) if not knowledge_recall(reply, q["fact"])]
    print(f"missed ({len(missed)}):")
    for q, reply in missed:
        print(f"  Q: {q['messages'][0]['content']}\n  A: {reply[:160]!r} (fact {q['fact']!r})")


if __name__ == "__main__":
    main()
