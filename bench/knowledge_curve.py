"""Where along training does a knowledge goal learn its facts, and when does the regression suite turn?

One LoRA run on the knowledge data a run builds from the bench's handbook (the offline generators, or the
stand-in teacher on loopback with --teacher), plus the base's replay examples, trained from scratch at the
knowledge recipe (lr 1e-3, r 16, alpha 32, recall weight 3, packed rows of 1024 tokens; recall_weight=1 for plain
cross-entropy). Every --every steps, side by side:

  recall: the 40 bench questions (facts past each page's opening, in the bench's own wordings) answered
          greedily by the weights in training, counted as evals.knowledge.knowledge_recall counts them;
  val:    the goal metric on the validation sample the pipeline scores checkpoints on (the first GOAL_SAMPLE
          validation questions): does the score that picks the kept weights follow recall?
  suite:  the regression suite answered as the verdict answers it, items lost and gained against the base, and
          whether the verdict's pass-rate rule would fail these weights (a greedy drop checked again on
          the changed items' sampled answers, as the verdict checks it).

--recipe hand trains the recipe the knowledge issue measured by hand instead (each whole chunk recited, a cloze
and a "what does PAGE say about X" question per fact sentence, answers without the page's name, no replay;
LoRA r 32, lr 1e-3, 8 epochs): the same questions then say whether the pipeline's data beats it.

The pipeline's run adds a sweep trial, a goal metric and its stop; this isolates the data and the recipe, so a
change to either is measured in about 15 minutes instead of a whole run.

Usage:  .venv/bin/python bench/knowledge_curve.py [--teacher] [--recipe hand] [--steps 170] [--every 17]
                                                  [--seed 42] [key=value ...]
        (key=value overrides a TrainConfig field, e.g. r=32 alpha=64 lr=5e-4)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.knowledge_recall import score as recall_of  # noqa: E402
from evals.generate import LoadedModel, generate_replies, stop_token_ids  # noqa: E402
from evals.quick import goal_scorer  # noqa: E402
from evals.regression import (  # noqa: E402
    load_suite,
    lost_and_gained,
    pass_rate_regressed,
    resampled_regressed,
    sampled_passes,
    suite_passes,
)
from tests.support.fake_upstream import FakeUpstream  # noqa: E402
from tests.support.handbook import PAGES, handbook_teacher, seen_in_training, write_pages  # noqa: E402
from tools import data as datasets  # noqa: E402
from tools.data import ingest, knowledge, replay  # noqa: E402
from tools.data.split import read_jsonl, write_jsonl  # noqa: E402
from tools.grounding import HEADER, GroundingIndex  # noqa: E402
from tools.models import resolve_base  # noqa: E402
from tools.train import trainer  # noqa: E402
from tools.train.config import KNOWLEDGE_RECALL_WEIGHT, TrainConfig  # noqa: E402
from tools.train.data import build_dataset, pack_rows  # noqa: E402
from tools.train.estimate import GOAL_SAMPLE  # noqa: E402
from tools.train.goal_stop import GoalStop  # noqa: E402

HAND = knowledge.KnowledgeConfig(kinds=("passage", "cloze", "about"), cite_title=False, restatements=0,
                                 paraphrases_per_fact=0)
"""The issue's hand-written recipe: whole chunks, a cloze and a section question per fact sentence."""


def build(work: Path, base_dir: Path, *, teacher: bool, hand: bool = False,
          seed: int = 42, grounded: bool = False) -> tuple[Path, Path, list[dict]]:
    """The training file (knowledge examples + replay), the validation file and the bench's questions (with
    `grounded`, every prompt and question with the grounding index's excerpts above it)."""
    questions = write_pages(work / "handbook", PAGES)
    docs = ingest.collect_documents([{"kind": "folder", "location": str(work / "handbook")}],
                                    work / "documents.jsonl")
    chunks = ingest.chunk_documents(ingest.read_documents(docs.path), out_path=work / "chunks.jsonl")
    config = HAND if hand else knowledge.KnowledgeConfig(seed=seed)
    with contextlib.ExitStack() as stack:
        endpoint = None
        if teacher:
            upstream = stack.enter_context(FakeUpstream(answer=handbook_teacher))
            os.environ["INGRAIN_TEACHER_BASE_URL"] = upstream.url
            stack.callback(os.environ.pop, "INGRAIN_TEACHER_BASE_URL", None)
            endpoint = knowledge.TeacherEndpoint.from_env()
        built = knowledge.build_knowledge(chunks.chunks, config, teacher=endpoint, cache_dir=work / "teacher-cache")
    if hand:  # no hold-out or validation: every example trains; the loss is logged on a few of them
        train, val = work / "data" / "train.jsonl", work / "data" / "val.jsonl"
        train.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(train, built.examples)
        write_jsonl(val, built.examples[::10])
        print(f"{len(built.examples)} knowledge examples (the hand recipe); {len(questions)} bench questions",
              flush=True)
        return train, val, questions
    split = knowledge.knowledge_split(built.examples, config)
    data = datasets.split_with_holdout(split.train, split.holdout, work / "data", val=split.val)
    reply = functools.partial(generate_replies, base_dir, max_new_tokens=64, batch_size=32)
    replayed = replay.write_replay_examples(reply=reply, n_train=data.n_train,
                                            out_path=Path(data.train_path).with_name("replay.jsonl"))
    mixed = work / "data" / "train_with_replay.jsonl"
    write_jsonl(mixed, read_jsonl(data.train_path) + read_jsonl(replayed.path))
    print(f"{data.n_train} knowledge examples{' (teacher)' if teacher else ''}, {replayed.n_examples} replay, "
          f"{data.n_val} validation; {len(questions)} bench questions", flush=True)
    if seen := seen_in_training(questions, work / "data"):
        print(f"WARNING: {len(seen)} bench questions are in the training data word for word: {seen}", flush=True)
    if grounded:
        index = GroundingIndex.build(chunks.chunks, work / "wordllama")
        for path in (mixed, Path(data.val_path)):
            write_jsonl(path, index.ground_examples(read_jsonl(path)))
        asked = index.ground([q["messages"][:1] for q in questions])
        questions = [{**q, "messages": [*prompt, *q["messages"][1:]]} for q, prompt in zip(questions, asked,
                                                                                            strict=True)]
        print(f"grounded on {len(index.passages)} sentences (k {index.config.k}); "
              f"{sum(p[-1]['content'].startswith(HEADER) for p in asked)} of {len(asked)} questions grounded",
              flush=True)
    return mixed, Path(data.val_path), questions


def scorer(questions: list[dict], base_dir: Path, val_path: Path | None,
           train_path: Path) -> tuple[Any, list[list[str]]]:
    """(model, tokenizer) → recall share, with the recall count, the validation score and the suite's
    lost/gained beside it; and the list each score appends its replies to the bench questions to."""
    suite = load_suite()
    # As the pipeline samples them (agent.nodes.training._goal_sample): questions first, recitations last.
    val = sorted(read_jsonl(val_path) if val_path else [],
                 key=lambda ex: ex.get("meta", {}).get("kind") in knowledge.RECITATION_KINDS)
    targets = [ex["messages"][-1]["content"] for ex in read_jsonl(train_path)[:200]]
    on_val = goal_scorer(val[:GOAL_SAMPLE], "knowledge", targets) if val else None
    # The base answers once, before training, from its own folder: full fine-tuning has no adapter to switch off.
    base = suite_passes(base_dir, suite)
    sampled: dict[str, int] = {}  # the base's sampled pass counts, per item checked again
    history: list[list[str]] = []  # each point's replies to the bench questions, in order

    def score(model: Any, tokenizer: Any) -> tuple[float, dict[str, Any]]:
        loaded = LoadedModel(model, tokenizer, "in-training", "in-training", stop_token_ids(tokenizer))
        lost, gained = lost_and_gained(suite, base, suite_passes(loaded, suite))
        replies = generate_replies(loaded, [q["messages"][:1] for q in questions], max_new_tokens=64,
                                   batch_size=20)
        recall = recall_of(replies, questions)
        history.append(replies)
        val_score = on_val(model, tokenizer)[0] if on_val else float("nan")
        greedy = regressed = pass_rate_regressed(len(lost), len(gained), len(suite))
        if greedy:  # checked again on the changed items' sampled answers, as the verdict does
            changed = [item for item in suite if item.id in set(lost + gained)]
            sampled.update(sampled_passes(base_dir, [i for i in changed if i.id not in sampled]))
            regressed = resampled_regressed({i.id: sampled[i.id] for i in changed},
                                            sampled_passes(loaded, changed), len(suite))
        verdict = "REGRESSED" if regressed else "ok (resampled)" if greedy else "ok"
        print(f"  recall {recall:>2}/{len(questions)}  val {val_score:.3f}  "
              f"suite lost {len(lost)} gained {len(gained)} "
              f"{verdict:14s}  lost: {', '.join(lost) or '-'}", flush=True)
        return recall / len(questions), {"recall": recall, "val": round(val_score, 4),
                                         "suite_lost": len(lost), "suite_gained": len(gained),
                                         "suite_regressed": regressed}

    return score, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", action="store_true", help="questions by the stand-in teacher on loopback")
    parser.add_argument("--recipe", choices=("ingrain", "hand"), default="ingrain",
                        help="the pipeline's knowledge data, or the issue's hand-written recipe")
    parser.add_argument("--seed", type=int, default=42, help="seed of the data's splits and of training")
    parser.add_argument("--steps", type=int, default=170, help="optimizer steps (the hand recipe: 8 epochs)")
    parser.add_argument("--every", type=int, default=17, help="score every N optimizer steps")
    parser.add_argument("--grounded", action="store_true",
                        help="excerpts from the grounding index above every prompt, in training and when asked")
    parser.add_argument("overrides", nargs="*", help="TrainConfig fields as key=value (JSON values)")
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, value in (kv.split("=", 1) for kv in args.overrides)}
    work = Path(tempfile.mkdtemp(prefix="ingrain-curve-"))
    base = resolve_base(None)
    hand = args.recipe == "hand"
    train_path, val_path, questions = build(work, base.path, teacher=args.teacher, hand=hand, seed=args.seed,
                                             grounded=args.grounded)
    recipe = {"r": 32, "alpha": 64} if hand else {"r": 16, "alpha": 32, "recall_weight": KNOWLEDGE_RECALL_WEIGHT}
    config = TrainConfig.from_yaml("lora-cpu", **{
        "lr": 1e-3, **recipe, "grad_accum": 1, "max_length": 1024, "seed": args.seed, **overrides})
    if hand:  # 8 epochs of packed rows
        from transformers import AutoTokenizer

        tokenized = build_dataset(AutoTokenizer.from_pretrained(base.path), train_path, config.max_length)
        rows = pack_rows(tokenized, config.max_length, seed=config.seed)
        args.steps = 8 * -(-len(rows) // (config.batch_size * config.grad_accum))
    config = TrainConfig.from_dict({**config.to_dict(), "max_steps": args.steps, "eval_steps": args.every,
                                    "save_steps": args.every})
    print(f"training {args.steps} steps (lr {config.lr}, r {config.r}, alpha {config.alpha}, recall weight "
          f"{config.recall_weight}); work in {work}",
          flush=True)
    # Patience longer than the run: every score is printed, nothing stops early.
    score, history = scorer(questions, base.path, None if hand else val_path, train_path)
    goal = GoalStop(score=score, every=args.every, patience=args.steps, best_dir=work / "best")
    result = trainer.train(config, base.path, train_path, val_path, work / "train", goal=goal, progress=False)
    passing = [p for p in result.goal_curve if not p.get("suite_regressed")]
    best = max(passing, key=lambda p: p["recall"]) if passing else None
    print(f"best recall {max(p['recall'] for p in result.goal_curve)}/{len(questions)}; best the suite passes: "
          + (f"{best['recall']}/{len(questions)} at step {best['step']}" if best else "none"))
    if best:  # what the kept weights get wrong, to see the misses' shape
        replies = history[result.goal_curve.index(best)]
        for question, reply in zip(questions, replies, strict=True):
            if not recall_of([reply], [question]):
                print(f"  miss: {question['messages'][0]['content']}  [{question['fact']}]  -> {reply[:100]!r}")


if __name__ == "__main__":
    main()
