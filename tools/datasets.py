"""Datasets in one import: read any supported file, validate it, load normalised examples, split them."""

from tools.dataset_dedup import example_key, near_duplicates
from tools.dataset_formats import ACCEPTED, FORMATS, Normalized, detect_format, normalize_record
from tools.dataset_issues import ISSUE_CODES, Issue
from tools.dataset_readers import SUPPORTED_FILES, Record, read_records
from tools.dataset_split import (
    DatasetSplit,
    holdout_path,
    read_jsonl,
    split_dataset,
    training_files,
    write_jsonl,
)
from tools.dataset_validate import (
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
    "split_dataset", "training_files", "validate_dataset", "write_jsonl",
]
