"""The report's data part: sources, documents kept and dropped with why, chunks, examples by kind, escaped samples."""

from __future__ import annotations

from pathlib import Path

from evals.report import write_report
from tools.data.ingest import DROP_REASONS, collect_documents

RUN = {"id": 3, "goal": "put ./handbook into a model", "policy": "auto"}


def sample(kind: str, question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "meta": {"kind": kind, "source": "handbook/leave.md"}}


def test_the_report_says_what_was_read_dropped_and_made(tmp_path: Path) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nEvery employee gets 27 days of paid leave per year, and unused "
                                     "days expire on 31 March of the following year.\n")
    (folder / "copy.md").write_text((folder / "leave.md").read_text())
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02binary" * 10)
    documents = collect_documents([{"kind": "folder", "location": str(folder)}], tmp_path / "documents.jsonl")
    assert documents.dropped == {"binary": 1, "duplicate": 1}
    knowledge = {"chunks": {"n_chunks": 1, "n_tokens": 30, "dropped": {}}, "n_facts": 2, "n_examples": 9,
                 "holdout": 1, "dropped_for_holdout": 1, "by_kind": {"factual": 4, "cloze": 3, "passage": 2},
                 "rejected": {"unsupported": 2, "invalid": 0, "duplicate": 1}, "teacher": {"chunks": 0},
                 "notes": [], "samples": [sample("factual", "How many days of leave <b>per year</b>?", "27 days."),
                                          sample("cloze", "Unused days expire on ___.", "31 March <script>")]}
    state = {"plan": {"objective": "knowledge", "base_model": "tiny", "sources": [
                 {"kind": "folder", "location": str(folder)}],
                 "data_estimate": {"examples": 8, "basis": "built from the 1 local document(s)", "guess": False}},
             "documents": {**documents.to_dict(), "crawl": None},
             "dataset": {"n_train": 7, "n_val": 1, "n_test": 1, "knowledge": knowledge}}
    page = write_report(tmp_path / "report.html", run=RUN, state=state, events=[]).read_text()
    data = page[page.index("<h2>Data</h2>"):]
    assert "<h3>Sources</h3>" in data and str(folder) in data
    assert "Kept <strong>1</strong> documents" in data and "dropped 2" in data
    for reason in ("binary", "duplicate"):
        assert f"<td>{reason}</td><td>1</td><td>{DROP_REASONS[reason]}</td>" in data
    assert "<td>factual</td><td>4</td>" in data and "2 unsupported, 1 duplicate" in data
    assert "The plan expected ~8 training examples" in data
    assert "&lt;b&gt;per year&lt;/b&gt;" in data and "31 March &lt;script&gt;" in data and "<script>" not in page


def test_a_run_stopped_after_gather_still_lists_its_documents(tmp_path: Path) -> None:
    documents = {"n_documents": 4, "n_words": 900, "dropped": {"too_short": 2}, "sources": ["./notes"],
                 "notes": ["Dropped 2 document(s) while cleaning: 2 too short."], "languages": {"en": 4}}
    page = write_report(tmp_path / "report.html", run=RUN, state={"documents": documents}, events=[]).read_text()
    assert "<h2>Data</h2>" in page and "./notes" in page and DROP_REASONS["too_short"] in page
    assert "Sample examples" not in page
