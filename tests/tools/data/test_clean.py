"""Cleaning: Unicode and whitespace, PII with the shared patterns, language, a quality score, near duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.data.clean import (
    CleanConfig,
    clean_documents,
    detect_language,
    duplicate_reasons,
    normalize_text,
    quality,
)
from tools.data.extract import make_document
from tools.data.ingest import collect_documents, read_documents
from tools.data.pii import scrub_pii
from tools.errors import ToolError

PAGE = ("Invoices are kept for seven years in the finance archive, and the archive is checked every spring by "
        "two people from the audit team who sign the register when they are done. ")
LONG = PAGE + " ".join(f"Rule {n}: a box of year {n} goes to shelf {n % 7} and is logged." for n in range(12))


def test_normalize_folds_unicode_and_whitespace_but_keeps_indentation() -> None:
    raw = "Caf\u00e9\u00a0 \ufb01ne\u200b  print  \r\n\n\n\n    code  block\u00ad here  \x07"
    assert normalize_text(raw) == "Café fine print\n\n    code block here"
    assert normalize_text("ｆｕｌｌ　ｗｉｄｔｈ ①") == "full width 1"


def test_language_is_detected_offline() -> None:
    assert detect_language(PAGE) == "en"
    assert detect_language("Jeder Mitarbeiter bekommt fünfundzwanzig Tage bezahlten Urlaub im Jahr.") == "de"
    assert detect_language("x = 1; y = 2") == ""


def test_quality_score_is_high_for_prose_and_low_for_menus_and_number_tables() -> None:
    assert quality(PAGE * 3).score == 1.0
    menu = "Home\nAbout\nCareers\nContact\nBlog\nSign in"
    numbers = "\n".join(f"{i} | {i * 7.5:.2f} | {i * 13} | {i * 91}" for i in range(30))
    furniture = "We use cookies to improve your experience.\nAll rights reserved.\nPrivacy policy\n" + PAGE
    assert quality(menu).score < 0.5 and quality(numbers).score < 0.5
    assert quality(furniture).boilerplate_ratio == 0.75 and quality(furniture).score < 0.5


def test_documents_are_dropped_by_reason_and_near_duplicates_go(tmp_path: Path) -> None:
    docs = [
        make_document("Archive", LONG, "a.md"),
        make_document("Archive copy", LONG.replace("spring", "autumn"), "b.md"),  # one word changed
        make_document("Archive again", LONG.upper(), "c.md"),  # same words
        make_document("Menu", "Home\nAbout\nCareers\nContact\nBlog\nSign in\nJobs\nPress\nHelp", "d.md"),
        make_document("Short", "Too short.", "e.md"),
        make_document("Urlaub", "Jeder Mitarbeiter bekommt fünfundzwanzig Tage bezahlten Urlaub im Jahr, "
                      "und fünf davon darf er ins nächste Jahr mitnehmen.", "f.md"),
    ]
    cleaned = clean_documents(docs, CleanConfig(languages=("en",)))
    assert [d.source for d in cleaned.documents] == ["a.md"]
    assert cleaned.dropped == {"near_duplicate": 1, "duplicate": 1, "low_quality": 1, "too_short": 1, "language": 1}
    assert cleaned.languages == {"en": 1} and cleaned.documents[0].language == "en"
    assert clean_documents(docs).languages == {"en": 1, "de": 1}  # no language filter by default


def test_pii_is_scrubbed_with_the_shared_patterns_and_the_id_follows_the_clean_text() -> None:
    text = f"{PAGE}Write to ada.lovelace@example.org or call +44 20 7946 0958; card 4111111111111111."
    [doc] = clean_documents([make_document("Contact", text, "c.md")]).documents
    assert doc.text == scrub_pii(text.strip()) and "[email]" in doc.text and "7946" not in doc.text
    assert doc.id == make_document("Contact", doc.text, "c.md").id


def test_duplicate_reasons_mark_later_copies_only() -> None:
    other = "Expenses are paid back within ten days when the receipt is attached to the claim in the portal."
    assert duplicate_reasons([LONG, other, LONG.lower(), LONG.replace("two", "three")]) == [
        None, None, "duplicate", "near_duplicate"]


def test_collect_documents_reports_what_cleaning_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "wiki"
    folder.mkdir()
    (folder / "a.md").write_text(f"# Archive\n\n{LONG}")
    (folder / "b.md").write_text(f"# Archive\n\n{LONG}".replace("spring", "autumn"))
    (folder / "menu.html").write_text("<html><body>" + "".join(f"<a href='/{w}'>{w}</a><br>" for w in
                                      ["Home", "About", "Careers", "Contact", "Blog", "Press", "Help", "Jobs"])
                                      + "</body></html>")
    result = collect_documents([{"kind": "folder", "location": str(folder)}], tmp_path / "docs.jsonl")
    assert [d.source for d in read_documents(result.path)] == [str(folder / "a.md")]
    assert result.dropped == {"low_quality": 1, "near_duplicate": 1}
    assert "Dropped 2 document(s) while cleaning: 1 low quality, 1 near duplicate." in result.notes


def test_config_is_validated() -> None:
    with pytest.raises(ToolError, match="min_quality"):
        CleanConfig(min_quality=2)
