"""parse_goal and plan: from the user's words to a spec, then to a plan with estimates."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent import goal as goals
from agent.context import Context
from agent.errors import AgentError
from agent.nodes.data import crawl_counts, gather_crawl
from agent.progress import live_progress
from agent.state import State
from agent.trace import Tracer, traced
from evals.generate import measure_generation
from tools import data as datasets
from tools import sweep
from tools.crawl import CrawlConfig, CrawlError, crawl
from tools.data import ingest, knowledge, replay
from tools.errors import ToolError
from tools.grounding import GroundingIndex
from tools.models import resolve_base
from tools.patterns.embed import wordllama_cache
from tools.progress import Progress
from tools.train import estimate
from tools.train.calibrate import calibration_examples, measure_training
from tools.train.config import TrainConfig


def _parse(text: str, state: State, runtime: Runtime[Context], trace: Tracer) -> tuple[dict[str, Any], list[str]]:
    # The run's policy was fixed when it started (flag or goal words); the spec only records it.
    parsed = goals.parse_goal(text, data_paths=state.data_paths, base=state.base,
                              budget_minutes=state.budget_minutes, cwd=Path.cwd())
    for step in parsed.trace:
        details = {k: v for k, v in step.items() if k != "reason"}
        trace.decision(f"goal parsed by the {step.get('path')} path", step.get("reason", ""), **details)
    problems = [getattr(p, "message", str(p)) for p in goals.validate_spec(parsed.spec, Path.cwd())]
    if not problems:
        try:
            trace.tool("resolve_base", resolve_base, parsed.spec.base_model, runtime.context.workspace)
        except ToolError as exc:
            problems.append(str(exc))
    return parsed.spec.model_dump(), problems


@traced
def parse_goal(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    spec, problems = _parse(state.goal, state, runtime, Tracer(runtime.context, "parse_goal"))
    return {"spec": spec, "problems": problems}


LOCAL = ("folder", "file", "builtin")
"""Source kinds on this machine: the plan reads them, and gather takes what it read."""
PREVIEW_PAGES = 20
"""Pages the plan crawls of a knowledge goal's URLs to size its data; gather revalidates them and crawls on."""
# What the offline knowledge generator made, in training examples per word: 21-28 per 300 words of reference
# prose (80 pydoc topics, the README), 134 per 300 of a fact-dense handbook. A guess takes the dense end, so
# that a budget is not planned for a fraction of the data the pages will give.
KNOWLEDGE_EXAMPLES_PER_WORD = 0.45
GUESS_WORDS_PER_URL = 3000
"""Words a URL the plan could not read is guessed to give: about ten 300-word pages of a site."""


@traced
def plan(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "plan")
    spec, problems = state.spec, state.problems
    if state.feedback:
        # A rejection's reason is read as more goal text: "use ./docs", "budget 5 minutes", "2 trials".
        spec, problems = _parse(f"{state.goal}. {' '.join(state.feedback)}", state, runtime, trace)
        trace.decision("re-planned", "the plan was rejected with a reason", feedback=state.feedback)
    if problems:
        raise AgentError("Cannot act on this goal yet:\n- " + "\n- ".join(problems))
    with runtime.context.store() as store:
        lessons = store.lessons(limit=50)
    hardware = trace.tool("detect_hardware", estimate.detect_hardware)
    stats = trace.tool("source_stats", estimate.source_stats, spec["sources"])
    documents, data_estimate = None, None
    doc_sources = [s for s in spec["sources"] if s["kind"] != "dataset"]
    if (spec["objective"] == "knowledge" and all(s["kind"] in (*LOCAL, "url") for s in doc_sources)
            and (stats.documents or any(s["kind"] == "url" for s in doc_sources))):
        # Knowledge data is made by rule from every fact, so the count depends on the text: read the documents
        # (a URL's first pages crawled into the run's cache) and build it offline now rather than guess, so the
        # sweep's epochs fit the budget. gather takes local documents as read and revalidates crawled pages.
        with live_progress(runtime.context.progress, "plan preview") as progress:
            preview = trace.tool("preview_knowledge_data", preview_knowledge_data, doc_sources,
                                 runtime.context.run_dir, gather_crawl(runtime.context),
                                 ocr_cache=runtime.context.workspace.root / "cache" / "ocr", progress=progress,
                                 teacher=knowledge.TeacherEndpoint.from_env() is not None)
        trace.decision(f"~{preview.examples} knowledge examples", preview.basis, guess=preview.guess)
        doc_examples, doc_tokens, documents = preview.examples, preview.tokens_per_example, preview.documents
        data_estimate = {k: v for k, v in preview.to_dict().items() if k != "documents"}
    else:
        # Documents become a few questions per ~300-word passage; each such example is ~150 tokens.
        doc_examples, doc_tokens = 3 * max(stats.documents, stats.words // 300), 150.0
    examples = stats.examples + doc_examples
    per_example = (stats.examples * stats.tokens_per_example() + doc_examples * doc_tokens) / max(examples, 1)
    # Hyperparameters named in the goal or in a rejection ("lr 1e-3", "2 trials") shape the grid.
    grid = sweep.default_grid(examples, lessons=lessons, feedback=" ".join([state.goal, *state.feedback]),
                              objective=spec["objective"])
    budget = spec.get("budget_minutes") or (30 if hardware.device == "cpu" else 120)
    preset = "lora-cpu" if hardware.device == "cpu" else "lora-cuda"
    config = TrainConfig.from_yaml(preset)
    row = estimate.row_length(int(examples * 0.8 * per_example), stats.longest_example_tokens(),
                              cap=config.max_length)
    speeds = trace.tool("measure_speeds", measure_speeds, spec, hardware, lessons, preset, row, runtime)
    trace.decision(f"speeds from {speeds.source}", f"train {speeds.train_tokens_per_s:.0f} tok/s, generate "
                   f"{speeds.generate_tokens_per_s:.0f} tok/s, {speeds.run_overhead_s:.0f}s per training run",
                   **speeds.to_dict())
    est = estimate.plan_budget(examples=examples, tokens_per_example=per_example, budget_minutes=budget,
                               trials=len(grid), hardware=hardware, speeds=speeds,
                               longest_example=stats.longest_example_tokens(), max_row=config.max_length,
                               replay_prompts=replay.replay_count(int(examples * 0.8)),
                               guarded=spec["objective"] == "knowledge")
    if est.sweep_trials < len(grid):
        grid = grid[:est.sweep_trials]
        trace.decision(f"{len(grid)} sweep trial(s)", "the budget leaves no room for one epoch per trial and "
                       "an epoch of training for more")
    if est.train_steps < est.steps_per_epoch:
        raise AgentError(f"A budget of {budget:g} minutes is too small to train even one epoch on this machine "
                         f"(an epoch is {est.steps_per_epoch} steps of {est.row_tokens} tokens; evaluation and "
                         f"deploy need ~{est.minutes['evaluate'] + est.minutes['deploy']:.1f} min). Give "
                         f"--budget-minutes {est.min_budget_minutes:g} or more.")
    trace.decision("estimate", f"{est.minutes['total']} min on {hardware.device}: {est.sweep_trials} trial(s) of "
                   f"one epoch, then up to {est.epochs:g} epochs ({est.train_steps} steps)", **est.minutes)
    steps = ["gather documents", "build and split data", f"sweep {len(grid)} configs",
             "train the winner", "evaluate against the base", "deploy", "reflect"]
    return {"spec": spec, "problems": [], "plan": {
        "objective": spec["objective"], "base_model": spec["base_model"], "sources": spec["sources"],
        "budget_minutes": budget, "steps": steps, "preset": preset, "grad_accum": 1, "grid": grid,
        "hardware": hardware.to_dict(), "estimate": est.to_dict(), "speeds": speeds.to_dict(),
        "lessons_used": [lesson["text"] for lesson in lessons[:5]], "documents": documents,
        "data_estimate": data_estimate,
    }}


@dataclass
class KnowledgePreview:
    """What the plan expects build_data's knowledge generator to make, and how it knows."""

    examples: int
    """Training examples (after the hold-out is taken out)."""
    tokens_per_example: float
    basis: str
    """How the count was found, said for the plan gate and the report."""
    guess: bool = False
    """True when pages could not be read, or only some of them were, and the count is extrapolated."""
    documents: dict[str, Any] | None = None
    """The documents read, when every source is local: gather takes them as they are."""
    crawl: dict[str, Any] | None = None
    """The preview crawl's counts, when the goal names URLs."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview_knowledge_data(sources: list[dict[str, Any]], run_dir: Path, crawl_config: CrawlConfig, *,
                           ocr_cache: Path | None = None, progress: Progress | None = None,
                           teacher: bool = False) -> KnowledgePreview:
    """Build the offline knowledge data from these sources as build_data will, and count it.

    Local sources are read whole. URLs are crawled into `run_dir/crawl` (gather's folder, so its crawl
    revalidates these pages instead of downloading them again), at most PREVIEW_PAGES pages: a site that ends
    sooner is counted exactly, a bigger one is scaled up to gather's page limit. When the crawl fails, the URLs
    are guessed at KNOWLEDGE_EXAMPLES_PER_WORD and the preview says so. With `teacher` (one is configured),
    the pairs it will be asked for are added on top, as an upper bound: some fail the checks or are held out.
    With `ocr_cache` (a folder) a re-run takes scanned PDF pages' OCR text from there.
    """
    urls = [s["location"] for s in sources if s["kind"] == "url"]
    local = [s for s in sources if s["kind"] != "url"]
    crawled, guessed_words, scale, basis = None, 0, 1.0, []
    if urls:
        try:
            crawled = crawl(urls, run_dir / "crawl", replace(crawl_config, max_pages=min(
                PREVIEW_PAGES, crawl_config.max_pages)))
        except CrawlError as exc:
            guessed_words = GUESS_WORDS_PER_URL * len(urls)
            basis.append(f"a guess for {len(urls)} URL(s) the plan could not read ({exc}): "
                         f"{GUESS_WORDS_PER_URL} words each at {KNOWLEDGE_EXAMPLES_PER_WORD} examples per word; "
                         "gather crawls again")
        else:
            local.append({"kind": "folder", "location": crawled.pages_dir})
            if crawled.pages_saved >= PREVIEW_PAGES and crawl_config.max_pages > PREVIEW_PAGES:
                scale = crawl_config.max_pages / crawled.pages_saved
                basis.append(f"built from the first {crawled.pages_saved} crawled pages and scaled to gather's "
                             f"limit of {crawl_config.max_pages} pages, a guess for a site that may have fewer")
            else:
                basis.append(f"built from all {crawled.pages_saved} pages the crawl reaches")
    examples, tokens, documents = 0, 150.0, None
    if local:
        docs = ingest.collect_documents(local, run_dir / "documents" / "documents.jsonl", ocr_cache=ocr_cache,
                                        progress=progress)
        chunks = ingest.chunk_documents(ingest.read_documents(docs.path)).chunks
        config = knowledge.KnowledgeConfig()
        built = knowledge.build_knowledge(chunks, knowledge.offline_config(config, teacher=teacher),
                                          progress=progress).examples
        train = knowledge.knowledge_split(built, config).train
        asked = knowledge.teacher_pair_counts(chunks, config) if teacher else [0] * len(chunks)
        # Only the crawled pages' share grows with the pages the preview did not fetch.
        crawled_share = (sum(ex["meta"]["source"].startswith(crawled.pages_dir) for ex in train)
                         + sum(n for n, c in zip(asked, chunks, strict=True) if c.source.startswith(crawled.pages_dir))
                         if crawled else 0)
        examples = len(train) + sum(asked) + round(crawled_share * (scale - 1))
        if train:
            # Training prompts carry their excerpts (tools.grounding), which double a short question's length.
            with contextlib.suppress(ToolError):
                train = GroundingIndex.build(chunks, wordllama_cache()).ground_examples(train)
            tokens = sum(len(json.dumps(ex["messages"], ensure_ascii=False)) for ex in train) / len(train) / 3.3
        documents = docs.to_dict() if not urls else None
        if not urls:
            basis.append(f"built from the {docs.n_documents} local document(s) as build_data will")
        if teacher:
            basis.append(f"plus up to {sum(asked)} questions the teacher is asked for (some fail its checks or "
                         "are held out)")
    examples += round(guessed_words * KNOWLEDGE_EXAMPLES_PER_WORD)
    return KnowledgePreview(examples, tokens, "; ".join(basis), guess=bool(guessed_words) or scale > 1,
                            documents=documents, crawl=crawl_counts(crawled) if crawled else None)


def measure_speeds(spec: dict[str, Any], hardware: estimate.Hardware, lessons: list[dict[str, Any]], preset: str,
                   row_tokens: int, runtime: Runtime[Context]) -> estimate.Speeds:
    """Speeds for this base on this hardware: the newest timing lesson, else a calibration, else defaults."""
    for lesson in lessons:  # newest first
        data = lesson.get("data") if isinstance(lesson.get("data"), dict) else {}
        if (lesson["topic"] == "timing" and data.get("base") == spec["base_model"]
                and data.get("hardware") == hardware.key() and data.get("generate_tokens_per_s")):
            return estimate.Speeds(data["train_tokens_per_s"], data["generate_tokens_per_s"],
                                   data.get("run_overhead_s", estimate.DEFAULT_RUN_OVERHEAD_S[hardware.device]),
                                   source=f"lesson of run {lesson.get('run_id')}",
                                   corrections=data.get("corrections") or {})
    started = time.perf_counter()
    try:
        base = resolve_base(spec["base_model"], runtime.context.workspace)
        records = []
        for source in spec["sources"]:
            if source["kind"] == "dataset" and not records:
                records = datasets.load_examples(source["location"], skip_invalid=True)[:48]
        sample = calibration_examples(records)
        speed = measure_training(preset, base.path, sample, row_tokens=row_tokens)
        # Evaluation and replay decode up to 64 prompts a batch for up to 64 tokens; throughput grows with the
        # batch and the decode's length (the prompt is read once), so measure near that: 48 prompts, 32 tokens
        # read 144-192 rows x steps/s where 32 prompts and 16 tokens read 110-139, and the suite itself decodes
        # at about 184 (SmolLM2, 2 cores; 16 tokens planned a CI-sized evaluation at 3.3 minutes, it took 1.8).
        generate = measure_generation(base.path, [ex["messages"][:-1] for ex in sample[:48]], max_new_tokens=32)
    except (ToolError, OSError, RuntimeError, ValueError) as exc:
        speeds = estimate.default_speeds(hardware.device)
        speeds.source = f"default (calibration failed: {exc})"
        return speeds
    return estimate.Speeds(speed.tokens_per_s, generate, speed.run_overhead_s, source="calibrated",
                           calibration_s=round(time.perf_counter() - started, 1))
