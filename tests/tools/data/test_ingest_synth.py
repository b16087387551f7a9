"""Documents in, chat examples out: folders, HTML, the built-in pydoc corpus, dedup and PII scrubbing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.data.ingest import collect_documents, read_documents, split_sections
from tools.data.synth import SynthConfig, lead_text, synthesize_examples
from tools.errors import ToolError


def test_folder_of_markdown_and_html_becomes_deduplicated_documents(tmp_path: Path) -> None:
    wiki = tmp_path / "wiki"
    (wiki / "sub").mkdir(parents=True)
    body = "Transformers are neural networks that use attention to mix information across tokens. " * 3
    (wiki / "attention.md").write_text(f"# Attention\n\n{body}\nMail me at ada@example.org.")
    (wiki / "sub" / "copy.md").write_text(f"# Attention\n\n{body}\nMail me at ada@example.org.")
    (wiki / "page.html").write_text(f"<html><script>var x=1;</script><body><h1>Page</h1><p>{body}</p></body></html>")
    (wiki / "tiny.txt").write_text("too short")
    (wiki / ".hidden").mkdir()
    (wiki / ".hidden" / "secret.md").write_text(body)
    result = collect_documents([{"kind": "folder", "location": str(wiki)}], tmp_path / "docs.jsonl")
    docs = read_documents(result.path)
    assert result.n_documents == 2 and len(docs) == 2
    assert result.dropped == {"duplicate": 1, "too_short": 1}
    assert {d.title for d in docs} == {"Attention", "Page"}
    assert all("ada@example.org" not in d.text for d in docs) and any("[email]" in d.text for d in docs)
    assert all("var x" not in d.text for d in docs)


def test_missing_folder_and_urls_fail_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        collect_documents([{"kind": "folder", "location": str(tmp_path / "nope")}], tmp_path / "d.jsonl")
    with pytest.raises(ToolError, match="Save the pages into a folder"):
        collect_documents([{"kind": "url", "location": "https://example.org"}], tmp_path / "d.jsonl")
    assert not (tmp_path / "d.jsonl").exists()


def test_builtin_pydoc_corpus_splits_into_titled_sections(tmp_path: Path) -> None:
    result = collect_documents([{"kind": "builtin", "location": "pydoc_data"}], tmp_path / "docs.jsonl")
    docs = read_documents(result.path)
    assert result.n_documents > 150
    assert 'The "assert" statement' in [d.title for d in docs]
    assert len({d.id for d in docs}) == len(docs)
    assert all(d.source.startswith("builtin:pydoc_data/") for d in docs)


def test_split_sections_on_underlined_headings() -> None:
    text = "Title\n*****\n\nIntro text.\n\nPart two\n========\n\nMore text here."
    assert split_sections(text) == [("Title", "Intro text."), ("Part two", "More text here.")]


def test_lead_text_skips_code_and_cuts_at_a_sentence() -> None:
    text = ("The statement does one thing. It does it well and quickly.\n\n   code_block ::= 'x'\n\n"
            "Another paragraph follows with many words in it to pass the limit of words here.")
    lead = lead_text(text, max_words=14)
    assert lead == "The statement does one thing. It does it well and quickly."
    assert "::=" not in lead_text(text, max_words=100)


def test_knowledge_examples_ask_several_phrasings_of_one_answer(tmp_path: Path) -> None:
    result = collect_documents([{"kind": "builtin", "location": "pydoc_data"}], tmp_path / "docs.jsonl")
    docs = read_documents(result.path)[:10]
    examples = synthesize_examples(docs, SynthConfig(objective="knowledge", questions_per_document=3))
    assert len(examples) >= 20
    for ex in examples:
        roles = [m["role"] for m in ex["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert 8 <= len(ex["messages"][2]["content"].split()) <= 40
    again = synthesize_examples(docs, SynthConfig(objective="knowledge", questions_per_document=3))
    assert again == examples  # deterministic for a seed: a resumed run rebuilds the same data


def test_task_goals_without_examples_are_refused() -> None:
    with pytest.raises(ToolError, match="needs input/output examples"):
        synthesize_examples([], SynthConfig(objective="task"))
