"""gather and build_data: documents in, a validated train/val split and a sealed hold-out out."""

from __future__ import annotations

import functools
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent.context import Context
from agent.progress import live_progress
from agent.state import State
from agent.trace import Tracer, traced
from evals.generate import BATCH_ROWS, generate_replies
from tools import data as datasets
from tools.crawl import CrawlConfig, CrawlSummary, crawl
from tools.data import ingest, knowledge, replay, synth
from tools.deploy import GROUNDING_DIR
from tools.errors import ToolError
from tools.grounding import GroundingIndex
from tools.models import resolve_base
from tools.patterns.embed import wordllama_cache

# A goal that names a site gets a bounded, polite crawl: enough pages for a small model, a minute or so per host.
GATHER_CRAWL = CrawlConfig(max_pages=50, max_depth=2)
# Below ~10 hold-out examples a verdict cannot claim significance; small data sets still keep 4/5 for training.
MIN_HOLDOUT = 12


def gather_crawl(context: Context) -> CrawlConfig:
    """The crawl a goal's URLs get (the plan's preview too), with a live line when the run shows progress."""
    return replace(GATHER_CRAWL, progress=context.progress)


def crawl_counts(summary: CrawlSummary) -> dict[str, Any]:
    """What the data report says about a crawl: pages saved, downloaded or unchanged, and what was skipped."""
    keys = ("pages_saved", "fetched", "from_cache", "skipped_robots", "skipped_type", "refused", "duplicates")
    return {**{key: getattr(summary, key) for key in keys}, "errors": sum(summary.errors.values())}


@traced
def gather(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "gather")
    document_sources = [s for s in state.spec["sources"] if s["kind"] != "dataset"]
    if not document_sources:
        trace.decision("no documents to gather", "every source is a dataset of examples")
        return {"documents": None}
    if (state.plan or {}).get("documents"):
        trace.decision("take the documents the plan read", "the plan read these sources to size the knowledge "
                       "data; reading them again would only repeat the extraction")
        return {"documents": state.plan["documents"]}
    urls = [s["location"] for s in document_sources if s["kind"] == "url"]
    crawled = None
    if urls:
        # Into the folder the plan's preview crawled, if it did: its cache turns unchanged pages into 304s.
        crawled = trace.tool("crawl", crawl, urls, runtime.context.run_dir / "crawl", gather_crawl(runtime.context))
        trace.decision(f"read {crawled.pages_saved} crawled pages as documents", "pages are saved raw and ingest "
                       f"reads them like local HTML files; {crawled.fetched} were downloaded and "
                       f"{crawled.from_cache} came unchanged from the cache", notes=crawled.notes)
        document_sources = [*(s for s in document_sources if s["kind"] != "url"),
                            {"kind": "folder", "location": crawled.pages_dir}]
    with live_progress(runtime.context.progress, "gather") as progress:
        docs = trace.tool("collect_documents", ingest.collect_documents, document_sources,
                          runtime.context.run_dir / "documents.jsonl", progress=progress,
                          ocr_cache=runtime.context.workspace.root / "cache" / "ocr")
    for note in docs.notes:
        trace.decision("skip files that are not text", note)
    return {"documents": {**docs.to_dict(), "crawl": crawl_counts(crawled) if crawled else None}}


def _knowledge_examples(documents: list[ingest.Document], runtime: Runtime[Context], trace: Tracer
                        ) -> tuple[knowledge.KnowledgeSplit, dict[str, Any], list[ingest.Chunk]]:
    """Questions about every fact of every passage (by a teacher LLM when one is configured, else by rule),
    split into training, validation rephrasings and a hold-out of facts spread over all sources, each asked in a
    phrasing its training questions lack; and what the data report says about them (chunks, examples by kind,
    rejections, samples); and the chunks."""
    chunks = trace.tool("chunk_documents", ingest.chunk_documents, documents,
                        out_path=runtime.context.run_dir / "chunks.jsonl")
    teacher = knowledge.TeacherEndpoint.from_env()
    config = knowledge.KnowledgeConfig()
    ruled = [k for k in config.kinds if not (teacher and k in config.teacher_replaces)]
    writes = (f"writes the {', '.join(config.teacher_replaces)} questions" if config.teacher_replaces
              else "adds its own questions")
    trace.decision(f"teacher {teacher.model} at {teacher.base_url}" if teacher else "offline generators",
                   f"a teacher {writes} for each passage (cached per request); {', '.join(ruled)} examples are "
                   "made by rule" if teacher else
                   "no teacher is configured (INGRAIN_TEACHER_BASE_URL or OPENAI_BASE_URL): "
                   f"{', '.join(ruled)} examples are made by rule from every passage")
    with live_progress(runtime.context.progress, "knowledge") as progress:
        built = trace.tool("build_knowledge", knowledge.build_knowledge, chunks.chunks, config, teacher=teacher,
                           cache_dir=runtime.context.workspace.root / "cache" / "teacher", progress=progress)
    for note in built.notes:
        trace.decision("knowledge data", note)
    split = knowledge.knowledge_split(built.examples, config)
    trace.decision(f"hold out {len(split.holdout)} facts", "one question per held-out fact, spread over every "
                   "source and phrased unlike its training questions", by_source=split.holdout_by_source())
    if split.val:
        spare = len(split.val) - split.reworded_val
        trace.decision(f"validate on {len(split.val)} questions",
                       f"{split.reworded_val} {config.validation_kind or 'reworded'} questions in wordings their "
                       f"facts no longer train on ({split.dropped_for_validation} more of that kind left training; "
                       f"the facts still train on every other kind)"
                       + (f", {spare} spare rephrasings of facts that keep another" if spare else ""))
    else:
        trace.decision("validate on a tenth of the examples", "no fact has a question of "
                       f"{config.validation_kind or 'its own'} kind or two rephrasings of one kind to spare")
    # One sample of each kind (up to five) shows a reader what the questions look like.
    summary = {**built.to_dict(samples=5), "chunks": chunks.to_dict(),
               "holdout": len(split.holdout), "dropped_for_holdout": split.dropped - split.dropped_for_validation,
               "validation": len(split.val), "dropped_for_validation": split.dropped_for_validation}
    return split, summary, chunks.chunks


def _ground(chunks: list[ingest.Chunk], paths: list[str], runtime: Runtime[Context], trace: Tracer
            ) -> GroundingIndex | None:
    """Index the sources' sentences and put the nearest above every training and validation prompt: the deployed
    model is asked with them (tools.grounding), so it learns to answer from them. The index (saved in the run), or
    None when the sources give no sentence to index."""
    try:
        index = trace.tool("build_grounding", GroundingIndex.build, chunks, wordllama_cache())
    except ToolError as exc:
        trace.decision("answer without excerpts", str(exc))
        return None
    folder = index.save(runtime.context.run_dir / GROUNDING_DIR)
    index.ground_files([Path(p) for p in paths])
    trace.decision(f"ground answers on {len(index.passages)} sentences",
                   f"the {index.config.k} sentences nearest a request (WordLlama, cosine ≥ {index.config.threshold:g}) "
                   "go above it in training, evaluation and serving: the model finds the sentence holding a fact "
                   "far more often with them than from its weights alone", path=str(folder))
    return index


@traced
def build_data(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "build_data")
    examples: list[dict] = []
    for source in state.spec["sources"]:
        if source["kind"] == "dataset":
            examples += trace.tool("load_examples", datasets.load_examples, source["location"],
                                   skip_invalid=state.skip_invalid)
    cap = state.plan["estimate"].get("max_examples")
    out_dir = runtime.context.run_dir / "data"
    if state.documents and state.spec["objective"] == "knowledge":
        documents = ingest.read_documents(state.documents["path"])
        built, knowledge_summary, chunks = _knowledge_examples(documents, runtime, trace)
        split = trace.tool("split_with_holdout", datasets.split_with_holdout, examples + built.train, built.holdout,
                           out_dir, val=built.val)
        grounding = _ground(chunks, [split.train_path, split.val_path], runtime, trace)
        trace.decision("data report", f"{knowledge_summary['chunks']['n_chunks']} chunks made "
                       f"{knowledge_summary['n_examples']} examples", **knowledge_summary)
    else:
        knowledge_summary = grounding = None
        if state.documents:
            documents = ingest.read_documents(state.documents["path"])
            config = synth.SynthConfig(objective=state.spec["objective"])
            if cap and len(documents) * config.questions_per_document > cap:
                documents = random.Random(config.seed).sample(documents,
                                                              max(4, cap // config.questions_per_document))
                trace.decision(f"use {len(documents)} documents", f"the budget trains about {cap} examples for "
                               "three epochs; a seeded sample keeps the run inside it")
            trace.decision("offline generator", "documents become style examples by rule",
                           questions_per_document=config.questions_per_document)
            examples += trace.tool("synthesize_examples", synth.synthesize_examples, documents, config)
        split = trace.tool("split_dataset", datasets.split_dataset, examples, out_dir,
                           min_test=min(MIN_HOLDOUT, len(examples) // 5))
    report = trace.tool("validate_dataset", datasets.validate_dataset, split.train_path)
    base = resolve_base(state.spec["base_model"], runtime.context.workspace)
    reply = functools.partial(generate_replies, base.path, max_new_tokens=64, batch_size=BATCH_ROWS,
                              cache_dir=runtime.context.workspace.root / "eval-cache")
    replayed = trace.tool("replay_examples", replay.write_replay_examples, reply=reply, n_train=split.n_train,
                          out_path=Path(split.train_path).with_name("replay.jsonl"))
    if grounding is not None:  # general prompts close to the sources are served with excerpts too
        grounding.ground_files([Path(replayed.path)])
    trace.decision(f"mix {replayed.n_examples} replay examples into training", "the base model's own replies to "
                   "general prompts keep its general behaviour while it learns the task (checked by the regression "
                   "suite)")
    with runtime.context.store() as store:
        store.record_dataset(split.dataset_id, str(Path(split.train_path).parent), run_id=runtime.context.run_id,
                             counts=split.counts, report=report.to_dict())
    return {"dataset": {**split.to_dict(), "report": report.to_dict(), "replay_path": replayed.path,
                        "knowledge": knowledge_summary,
                        "grounding_path": str(runtime.context.run_dir / GROUNDING_DIR) if grounding else None}}
