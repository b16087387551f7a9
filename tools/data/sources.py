"""Which local files ingrain reads, and as what: dataset files, saved `datasets` folders, text documents."""

from __future__ import annotations

from pathlib import Path

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
DATASET_SUFFIXES = JSONL_SUFFIXES | PARQUET_SUFFIXES | {".json", ".csv", ".tsv"}
"""Files of examples that `tools.data.readers` reads."""
TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst", ".org"})
"""Documents read as plain text (UTF-8, else the detected encoding)."""
HTML_SUFFIXES = frozenset({".html", ".htm"})
"""Web pages: the main text is kept, navigation and boilerplate dropped."""
PDF_SUFFIXES = frozenset({".pdf"})
WORD_SUFFIXES = frozenset({".docx"})
DOCUMENT_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | WORD_SUFFIXES
"""Documents that `tools.data.extract` turns into text, each family by its own reader."""
UNREADABLE_DOCUMENT_SUFFIXES = frozenset({".doc", ".odt", ".rtf", ".epub", ".pptx"})
"""Documents people name as sources that ingest cannot turn into text; it skips and counts them."""
SAVED_DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json")
"""Files `Dataset.save_to_disk` / `DatasetDict.save_to_disk` write at the top of the folder."""


def is_dataset_file(path: Path | str) -> bool:
    """A file of examples by its suffix (any case); the file need not exist."""
    return Path(path).suffix.lower() in DATASET_SUFFIXES


def is_document_file(path: Path | str) -> bool:
    """A document ingest reads (text, HTML, PDF, Word), by its suffix (any case); the file need not exist."""
    return Path(path).suffix.lower() in DOCUMENT_SUFFIXES


def is_unreadable_document(path: Path | str) -> bool:
    """A document format (old Word, OpenDocument, ...) that ingest cannot read as text, by its suffix."""
    return Path(path).suffix.lower() in UNREADABLE_DOCUMENT_SUFFIXES


def is_saved_dataset(path: Path | str) -> bool:
    """A folder written by `datasets`' `save_to_disk`."""
    path = Path(path)
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_DATASET_MARKERS)
