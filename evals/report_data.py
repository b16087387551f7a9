"""The data part of a run's report: sources, documents kept and dropped with why, chunks, examples by kind, samples."""

from __future__ import annotations

from typing import Any

from evals import report  # the module, not its names: evals.report calls into this one as it loads
from tools.data.ingest import DROP_REASONS


def data_report(plan: dict[str, Any] | None, documents: dict[str, Any] | None,
                dataset: dict[str, Any] | None) -> list[str]:
    """HTML parts for what the run read and made from it; empty when it read no documents."""
    if not documents:
        return []
    knowledge = (dataset or {}).get("knowledge") or {}
    heading = [] if dataset else ["<h2>Data</h2>"]  # else the dataset's own section opens it
    return [*heading, *_sources(plan or {}, documents), *_documents(documents), *_examples(plan or {}, knowledge),
            *_samples(knowledge.get("samples") or [])]


def _sources(plan: dict[str, Any], documents: dict[str, Any]) -> list[str]:
    crawl = documents.get("crawl") or {}
    rows = []
    for source in plan.get("sources") or [{"kind": "folder", "location": s} for s in documents.get("sources", [])]:
        row = {"kind": source["kind"], "location": source["location"], "read": ""}
        if source["kind"] == "url" and crawl:
            row["read"] = (f"{crawl['pages_saved']} pages crawled: {crawl['fetched']} downloaded, "
                           f"{crawl['from_cache']} unchanged (cache), {crawl['skipped_robots']} kept out by "
                           f"robots.txt, {crawl['errors']} failed")
        elif source["kind"] == "dataset":
            row["read"] = "examples, used as given"
        rows.append(row)
    return ["<h3>Sources</h3>", report.table(rows)]


def _documents(documents: dict[str, Any]) -> list[str]:
    dropped = documents.get("dropped") or {}
    kept = (f"<p>Kept <strong>{report.esc(documents.get('n_documents'))}</strong> documents "
            f"({report.esc(documents.get('n_words'))} words"
            + ("; languages " + report.esc(", ".join(f"{lang} {n}" for lang, n in documents["languages"].items()))
               if documents.get("languages") else "")
            + f"); dropped {sum(dropped.values())}.</p>")
    rows = [{"reason": reason, "documents": n, "why": DROP_REASONS.get(reason, reason.replace("_", " "))}
            for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1])]
    notes = documents.get("notes") or []
    return ["<h3>Documents</h3>", kept, *([report.table(rows)] if rows else []),
            *(["<ul>" + "".join(f"<li>{report.esc(n)}</li>" for n in notes) + "</ul>"] if notes else [])]


def _examples(plan: dict[str, Any], knowledge: dict[str, Any]) -> list[str]:
    if not knowledge:
        return []
    chunks = knowledge.get("chunks") or {}
    passages_dropped = sum((chunks.get("dropped") or {}).values())
    parts = ["<h3>Chunks and examples</h3>",
             f"<p>{report.esc(chunks.get('n_chunks'))} chunks ({report.esc(chunks.get('n_tokens'))} tokens"
             f"{f'; {passages_dropped} repeated passages dropped' if passages_dropped else ''}) stating "
             f"{report.esc(knowledge.get('n_facts'))} facts made {report.esc(knowledge.get('n_examples'))} "
             f"examples; {report.esc(knowledge.get('holdout'))} became the hold-out, and "
             f"{report.esc(knowledge.get('dropped_for_holdout'))} training examples that gave them away were "
             "removed"
             + (f"; {report.esc(knowledge['validation'])} rephrased questions score checkpoints instead of training"
                if knowledge.get("validation") else "")
             + (f", and {report.esc(knowledge['dropped_for_validation'])} more in their wordings left training"
                if knowledge.get("dropped_for_validation") else "") + ".</p>"]
    estimate = plan.get("data_estimate")
    if estimate:
        parts.append(f"<p>The plan expected ~{report.esc(estimate.get('examples'))} training examples: "
                     f"{report.esc(estimate.get('basis'))}.</p>")
    by_kind = knowledge.get("by_kind") or {}
    parts.append(report.table([{"kind": kind, "examples": n} for kind, n in sorted(by_kind.items(),
                                                                                  key=lambda kv: -kv[1])]))
    rejected = {reason: n for reason, n in (knowledge.get("rejected") or {}).items() if n}
    if rejected:
        parts.append("<p>Rejected candidates: " + report.esc(", ".join(f"{n} {reason}" for reason, n in
                                                                          rejected.items())) + ".</p>")
    teacher = knowledge.get("teacher") or {}
    if teacher.get("chunks"):
        parts.append(f"<p>Teacher: {report.esc(teacher['chunks'])} chunks, {report.esc(teacher['requests'])} "
                     f"requests, {report.esc(teacher['cached'])} answered from the cache, "
                     f"{report.esc(teacher['fallback_chunks'])} fell back to the rules.</p>")
    notes = knowledge.get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{report.esc(n)}</li>" for n in notes) + "</ul>")
    return parts


def _samples(samples: list[dict[str, Any]]) -> list[str]:
    if not samples:
        return []
    rows = [{"kind": s.get("meta", {}).get("kind"),
             "question": next((m["content"] for m in s["messages"] if m["role"] == "user"), ""),
             "answer": s["messages"][-1]["content"], "source": s.get("meta", {}).get("source")} for s in samples]
    return ["<h3>Sample examples (one per kind)</h3>", report.table(rows, cls="sample")]
