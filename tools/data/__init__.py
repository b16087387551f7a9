"""Datasets and documents: read any supported file, validate, normalise, deduplicate and split examples;
ingest, synthesize and replay training data (and, later, crawl, extract and chunk)."""

from tools.data.dedup import example_key, near_duplicates
from tools.data.formats import ACCEPTED, FORMATS, Normalized, detect_format, normalize_record
from tools.data.issues import ISSUE_CODES, Issue
from tools.data.readers import SUPPORTED_FILES, Record, read_records
from tools.data.split import (
    DatasetSplit,
    holdout_path,
    read_jsonl,
    split_dataset,
    split_with_holdout,
    training_files,
    write_jsonl,
)
from tools.data.validate import (
    LengthStats,
    ValidationReport,
    load_examples,
    measure_lengths,
    validate_dataset,
)

__all__ = [
    "ACCEPTED", "FORMATS", "ISSUE_CODES", "SUPPORTED_FILES", "DatasetSplit", "Issue", "LengthStats",
    "Normalized", "Record", "ValidationReport", "detect_format", "example_key", "holdout_path",
    "load_examples", "measure_lengths", "near_duplicates", "normalize_record", "read_jsonl", "read_records",
    "split_dataset", "split_with_holdout", "training_files", "validate_dataset", "write_jsonl",
]
