"""Which local files ingrain reads, and as what: dataset files, saved `datasets` folders, text documents."""

from __future__ import annotations

from pathlib import Path

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
DATASET_SUFFIXES = JSONL_SUFFIXES | PARQUET_SUFFIXES | {".json", ".csv", ".tsv"}
"""Files of examples that `tools.data.readers` reads."""
DOCUMENT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".org"})
"""Documents that `tools.data.ingest` reads as text."""
UNREADABLE_DOCUMENT_SUFFIXES = frozenset({".pdf", ".docx", ".doc", ".odt", ".rtf", ".epub", ".pptx"})
"""Documents people name as sources that ingest cannot turn into text; it skips and counts them."""
SAVED_DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json")
"""Files `Dataset.save_to_disk` / `DatasetDict.save_to_disk` write at the top of the folder."""


def is_dataset_file(path: Path | str) -> bool:
    """A file of examples by its suffix (any case); the file need not exist."""
    return Path(path).suffix.lower() in DATASET_SUFFIXES


def is_document_file(path: Path | str) -> bool:
    """A text document ingest reads, by its suffix (any case); the file need not exist."""
    return Path(path).suffix.lower() in DOCUMENT_SUFFIXES


def is_unreadable_document(path: Path | str) -> bool:
    """A document format (PDF, Word, ...) that ingest cannot read as text, by its suffix."""
    return Path(path).suffix.lower() in UNREADABLE_DOCUMENT_SUFFIXES


def is_saved_dataset(path: Path | str) -> bool:
    """A folder written by `datasets`' `save_to_disk`."""
    path = Path(path)
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_DATASET_MARKERS)
