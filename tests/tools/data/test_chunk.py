"""Chunking: heading paths from Markdown, reStructuredText and web pages; token windows with overlap; nothing lost."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from tools.data.chunk import Chunk, ChunkConfig, approx_tokens, chunk_document, sections, windows
from tools.data.extract import make_document
from tools.data.ingest import chunk_documents, collect_documents, read_chunks, read_documents
from tools.errors import ToolError

HANDBOOK = """# Handbook

Welcome to the company. This handbook says how we work together.

## Leave

Everyone gets twenty-five days of paid leave every year.

### Sick leave

Tell your manager before ten on the first day you are ill.

```
# a comment in a code block, not a heading
```

## Pay

Salaries are paid on the last working day of the month.
"""


def test_chunk_fields_are_the_stable_interface() -> None:
    assert [f.name for f in dataclasses.fields(Chunk)] == [
        "text", "source", "title", "heading", "index", "n_tokens", "doc_id"]


def test_markdown_heading_paths() -> None:
    doc = make_document("Handbook", HANDBOOK, "handbook.md")
    chunks = chunk_document(doc)
    assert [(c.heading, c.text.split(".")[0]) for c in chunks] == [
        ("Handbook", "Welcome to the company"),
        ("Handbook > Leave", "Everyone gets twenty-five days of paid leave every year"),
        ("Handbook > Leave > Sick leave", "Tell your manager before ten on the first day you are ill"),
        ("Handbook > Pay", "Salaries are paid on the last working day of the month"),
    ]
    assert "# a comment in a code block" in chunks[2].text
    assert [c.index for c in chunks] == [0, 1, 2, 3] and {c.doc_id for c in chunks} == {doc.id}
    assert all(c.n_tokens == approx_tokens(c.text) for c in chunks)


def test_restructuredtext_underlines_rank_by_first_appearance_and_the_title_leads() -> None:
    rst = ("=====\nGuide\n=====\n\nTop text.\n\nInstall\n-------\n\nInstall text.\n\nLinux\n~~~~~\n\nLinux text.\n\n"
           "Usage\n-----\n\nUsage text.\n")
    assert [(" > ".join(path), body) for path, body in sections(rst)] == [
        ("Guide", "Top text."), ("Guide > Install", "Install text."), ("Guide > Install > Linux", "Linux text."),
        ("Guide > Usage", "Usage text.")]
    # A document without its own top heading gets its title in front of the path.
    chunks = chunk_document(make_document("Setup notes", "Intro.\n\nLinux\n=====\n\nApt.\n", "notes.rst"))
    assert [c.heading for c in chunks] == ["Setup notes", "Setup notes > Linux"]


def test_web_page_headings_become_the_path(tmp_path: Path) -> None:
    body = "This handbook says how the company works, from the first day to the last one, for everyone. " * 3
    leave = "Everyone gets twenty-five days of paid leave every year, and may carry five of them over. " * 3
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "handbook.html").write_text(
        f"<html><head><title>Handbook</title></head><body><nav><a href='/'>Home</a> <a href='/jobs'>Jobs</a></nav>"
        f"<article><h1>Handbook</h1><p>{body}</p><h2>Leave</h2><p>{leave}</p><h3>Sick leave</h3>"
        f"<p>Tell your manager before ten on the first day you are ill, and send a note after three days.</p>"
        f"</article><footer>Copyright Acme. All rights reserved.</footer></body></html>")
    result = collect_documents([{"kind": "folder", "location": str(tmp_path / "site")}], tmp_path / "docs.jsonl")
    chunks = chunk_documents(read_documents(result.path)).chunks
    assert [c.heading for c in chunks] == ["Handbook", "Handbook > Leave", "Handbook > Leave > Sick leave"]
    assert chunks[2].text.startswith("Tell your manager")


def test_windows_respect_the_limit_and_repeat_the_overlap() -> None:
    body = " ".join(f"Sentence {i} says the answer is {i * 3}." for i in range(200))
    config = ChunkConfig(max_tokens=64, overlap_tokens=16)
    parts = windows(body, config)
    assert len(parts) > 10 and all(approx_tokens(p) <= 64 for p in parts)
    for before, after in itertools.pairwise(parts):
        words_before, words_after = before.split(), after.split()
        shared = next(k for k in range(len(words_after), 0, -1) if words_before[-k:] == words_after[:k])
        assert 0 < approx_tokens(" ".join(words_after[:shared])) <= 16
        assert len(words_after) > shared  # every window moves forward
    assert all(p.endswith(".") for p in parts)  # cut after a sentence when one is near
    assert windows(body, ChunkConfig(max_tokens=64, overlap_tokens=0))[1].startswith("Sentence")


def test_a_token_counter_can_be_passed_in() -> None:
    doc = make_document("Pairs", "abcd " * 400, "c.txt")
    config = ChunkConfig(max_tokens=100, overlap_tokens=0)
    chunks = chunk_document(doc, config, count_tokens=lambda text: 2 * len(text.split()))
    assert [c.n_tokens for c in chunks] == [100] * 8 and sum(c.text.count("abcd") for c in chunks) == 400


def test_a_long_document_is_kept_whole_and_every_sentence_lands_in_a_chunk(tmp_path: Path) -> None:
    sentences = [f"Fact {i} of the archive says box {i} holds {i % 17} ledgers from {1900 + i % 120}."
                 for i in range(2400)]
    paragraphs = ["\n".join(sentences[i:i + 8]) for i in range(0, len(sentences), 8)]
    parts = [f"## Part {p}\n\n" + "\n\n".join(paragraphs[p * 30:(p + 1) * 30]) for p in range(10)]
    (tmp_path / "archive.md").write_text("# Archive\n\n" + "\n\n".join(parts))
    result = collect_documents([{"kind": "file", "location": str(tmp_path / "archive.md")}], tmp_path / "docs.jsonl")
    assert result.n_documents == 1 and result.n_words > 20000 and not result.dropped
    chunked = chunk_documents(read_documents(result.path), out_path=tmp_path / "chunks.jsonl")
    assert chunked.n_chunks > 100 and not chunked.dropped
    # Every sentence sits wholly inside some chunk of its own part, under that part's heading path.
    for i, sentence in enumerate(sentences):
        heading = f"Archive > Part {i // 240}"
        assert any(sentence in c.text for c in chunked.chunks if c.heading == heading), sentence
    assert read_chunks(chunked.path) == chunked.chunks
    assert chunked.to_dict() == {"path": str(tmp_path / "chunks.jsonl"), "n_chunks": chunked.n_chunks,
                                 "n_documents": 1, "n_tokens": sum(c.n_tokens for c in chunked.chunks), "dropped": {}}


def test_passages_repeated_across_documents_are_dropped_and_counted() -> None:
    disclaimer = ("This page is maintained by the people team; questions about it go to the team channel, and "
                  "changes are announced in the monthly newsletter before they take effect.")
    docs = [make_document(f"Page {i}", f"# Page {i}\n\nPage {i} explains topic number {i} in plain words for "
                          f"everyone who asks.\n\n## About this page\n\n{disclaimer}", f"p{i}.md") for i in range(3)]
    chunked = chunk_documents(docs)
    assert chunked.dropped == {"duplicate": 2}
    assert [c.heading for c in chunked.chunks].count("Page 0 > About this page") == 1
    assert chunked.n_chunks == 4


def test_config_is_validated() -> None:
    with pytest.raises(ToolError, match="overlap_tokens"):
        ChunkConfig(max_tokens=64, overlap_tokens=40)
