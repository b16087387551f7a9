"""One set of PII patterns, used both for ingested documents and for the serving usage log."""

from __future__ import annotations

from pathlib import Path

from tools.data.ingest import collect_documents, read_documents
from tools.data.pii import scrub_pii
from tools.serve.usage import apply_content_policy

TEXT = ("Mail ada.lovelace+ml@example.co.uk or call +44 (0)20 7946-0958 or 555-1234; card 4111111111111111, "
        "order 12 of 2024 at 3.5%")


def test_scrub_masks_emails_phones_and_long_digit_runs_but_keeps_ordinary_numbers() -> None:
    out = scrub_pii(TEXT)
    assert "ada.lovelace" not in out and "[email]" in out
    assert "7946" not in out and "+44" not in out and "555-1234" not in out and "[phone]" in out
    assert "4111111111111111" not in out and "[number]" in out
    assert "order 12 of 2024 at 3.5%" in out


def test_ingested_documents_and_the_usage_log_scrub_alike(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "contact.md").write_text(f"# Contact\n\n{TEXT}\n")
    result = collect_documents([{"kind": "folder", "location": str(notes)}], tmp_path / "docs.jsonl")
    [doc] = read_documents(result.path)
    logged = apply_content_policy({"id": "r", "response": TEXT}, "redacted")
    assert doc.text.endswith(scrub_pii(TEXT)) and logged["response"] == scrub_pii(TEXT)
