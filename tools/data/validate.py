"""Validate a dataset (formats, turns, lengths, duplicates, overlap); load normalised examples."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.data.dedup import example_key, example_text, near_duplicates
from tools.data.formats import ACCEPTED, Normalized, normalize_record
from tools.data.issues import Issue, issue
from tools.data.readers import SUPPORTED_FILES, location_kind, read_records
from tools.errors import ToolError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 4
TOKENS_PER_TURN = 5  # ChatML wraps each turn in <|im_start|>role\n ... <|im_end|>\n


@dataclass(frozen=True)
class LengthStats:
    """Token lengths of the valid examples."""

    method: str
    """`tokenizer` (the chat template, tokenized) or `estimate` (~4 characters per token + 5 per turn)."""
    min: int
    p50: int
    p95: int
    max: int
    context_length: int
    """The limit examples were checked against."""
    over_limit: int
    """How many examples are longer than context_length."""


@dataclass
class ValidationReport:
    """What `validate_dataset` found; `ok` is False when any issue is an error."""

    path: str
    """The dataset validated."""
    location: str
    """What `Issue.line` counts in this source: `line` (text files) or `row` (Parquet, datasets)."""
    n_records: int = 0
    """Records read, valid or not."""
    n_valid: int = 0
    """Records that normalise to a usable example (duplicates included)."""
    formats: dict[str, int] = field(default_factory=dict)
    """Records per detected format; `unknown` for records that matched none."""
    lengths: LengthStats | None = None
    """Token length distribution of the valid examples; None when there are none."""
    issues: list[Issue] = field(default_factory=list)
    """Every problem found, in line order; dataset-wide issues have line 0."""
    val_path: str | None = None
    """The validation file checked for overlap, if any."""

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def issue_counts(self) -> dict[str, int]:
        return dict(Counter(i.code for i in self.issues))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "ok": self.ok, "location": self.location, "n_records": self.n_records,
            "n_valid": self.n_valid, "formats": dict(self.formats),
            "lengths": None if self.lengths is None else vars(self.lengths).copy(),
            "n_errors": len(self.errors), "n_warnings": len(self.warnings),
            "issue_counts": self.issue_counts(),
            "issues": [i.to_dict() for i in self.issues], "val_path": self.val_path,
        }


def measure_lengths(examples: list[dict[str, Any]],
                    tokenizer: PreTrainedTokenizerBase | None = None) -> list[int]:
    """Token length of each example: rendered with the tokenizer's chat template, or estimated without one."""
    if tokenizer is None:
        return [
            sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + TOKENS_PER_TURN for m in ex["messages"])
            if "messages" in ex else math.ceil(len(ex["text"]) / CHARS_PER_TOKEN)
            for ex in examples
        ]
    # Render first, then tokenize in one batch: per-call overhead dominates and the fast tokenizer batches.
    texts = [tokenizer.apply_chat_template(ex["messages"], tokenize=False) if "messages" in ex else ex["text"]
             for ex in examples]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []


def length_stats(lengths: list[int], context_length: int, method: str) -> LengthStats | None:
    if not lengths:
        return None
    ordered = sorted(lengths)

    def rank(q: float) -> int:  # nearest-rank percentile: always one of the measured lengths
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return LengthStats(method, ordered[0], rank(0.5), rank(0.95), ordered[-1], context_length,
                       sum(1 for n in lengths if n > context_length))


def _normalise_all(path: Path) -> tuple[list[Normalized], list[int], list[Issue]]:
    """Every record normalised, with its line; bad JSON becomes an issue here."""
    results, lines, problems = [], [], []
    for record in read_records(path):
        if record.error is not None:
            problems.append(issue(record.line, "bad_json", f"{record.error}; fix the JSON on this line."))
            continue
        results.append(normalize_record(record.data, record.line))
        lines.append(record.line)
    return results, lines, problems


def validate_dataset(path: Path | str, *, tokenizer: PreTrainedTokenizerBase | None = None,
                     context_length: int = 2048, val_path: Path | str | None = None) -> ValidationReport:
    """Check a dataset file or folder and report every problem with its line; never raises for bad data.

    Lengths are counted on the tokenizer's chat template when a tokenizer is given, else estimated.
    """
    if context_length < 1:
        raise ToolError(f"context_length must be a positive number of tokens, got {context_length}.")
    path = Path(path).expanduser()
    report = ValidationReport(str(path), location_kind(path),
                              val_path=None if val_path is None else str(val_path))
    if not path.exists():
        report.issues.append(issue(0, "missing_file", f"{path} does not exist; check the path "
                                                      f"(accepted: {SUPPORTED_FILES})."))
        return report
    try:
        normalized, lines, problems = _normalise_all(path)
    except ToolError as err:
        report.issues.append(issue(0, "unreadable_file", str(err)))
        return report
    where = report.location
    report.n_records = len(normalized) + len(problems)
    formats = Counter(n.format or "unknown" for n in normalized)
    report.formats = dict(formats)
    for item in normalized:
        problems.extend(item.issues)
    valid = [(line, item) for line, item in zip(lines, normalized, strict=True) if item.valid]
    report.n_valid = len(valid)
    if report.n_records == 0:
        problems.append(issue(0, "empty_dataset", f"{path.name} has no records; add examples ({ACCEPTED})."))

    text_lines = [line for line, item in valid if item.format == "text"]
    chat_lines = [line for line, item in valid if item.format != "text"]
    if text_lines and chat_lines:
        minority = text_lines if len(text_lines) <= len(chat_lines) else chat_lines
        problems.append(issue(minority[0], "mixed_text_and_chat", f"{len(text_lines)} raw `text` records are "
                              f"mixed with {len(chat_lines)} chat records; training needs one kind — convert "
                              f"or drop the {'text' if minority is text_lines else 'chat'} records."))
    if text_lines:
        problems.append(issue(0, "raw_text", f"{len(text_lines)} records are plain `text`: they train as "
                              "language modelling on every token; use messages or prompt/completion to "
                              "train replies only."))

    unique = _flag_duplicates(valid, where, problems)
    examples = [item.example for _, item in valid]
    lengths = measure_lengths(examples, tokenizer)
    method = "tokenizer" if tokenizer is not None else "estimate"
    report.lengths = length_stats(lengths, context_length, method)
    for (line, _), length in zip(valid, lengths, strict=True):
        if length > context_length:
            problems.append(issue(line, "too_long", f"{length} tokens > context length {context_length}; "
                                                    "training truncates it: shorten or split the example."))
    if val_path is not None:
        problems.extend(_overlap_with(Path(val_path).expanduser(), unique, where))
    report.issues = sorted(problems, key=lambda i: (i.line, i.severity != "error", i.code))
    return report


def _flag_duplicates(valid: list[tuple[int, Normalized]], where: str,
                     problems: list[Issue]) -> dict[str, int]:
    """Exact and near duplicates among valid examples; returns content key → line of the first copy."""
    first: dict[str, int] = {}
    unique: list[tuple[int, dict[str, Any]]] = []
    for line, item in valid:
        key = example_key(item.example)
        if key in first:
            problems.append(issue(line, "duplicate", f"same example as {where} {first[key]}; duplicates are "
                                                     "dropped before the split — remove it to be sure."))
        else:
            first[key] = line
            unique.append((line, item.example))
    for i, j, similarity in near_duplicates([example_text(ex) for _, ex in unique]):
        problems.append(issue(unique[j][0], "near_duplicate", f"{similarity:.0%} similar to {where} "
                              f"{unique[i][0]} (word-shingle Jaccard); vary or drop one of them."))
    return first


def _overlap_with(val_path: Path, train_keys: dict[str, int], where: str) -> list[Issue]:
    if not val_path.exists():
        return [issue(0, "missing_file", f"validation file {val_path} does not exist; check --val.")]
    try:
        normalized, lines, _ = _normalise_all(val_path)
    except ToolError as err:
        return [issue(0, "unreadable_file", f"validation file: {err}")]
    val_kind = location_kind(val_path)
    problems = []
    for line, item in zip(lines, normalized, strict=True):
        if item.example is None:
            continue
        train_line = train_keys.get(example_key(item.example))
        if train_line is not None:
            problems.append(issue(train_line, "train_val_overlap", f"also in {val_path.name} {val_kind} "
                                  f"{line}: the validation loss would be measured on training data; "
                                  "remove one copy."))
    return problems


def load_examples(path: Path | str, *, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """The dataset's normalised examples (`{"messages": ...}`, or `{"text": ...}` for a raw-text dataset).

    Raises ToolError if any record is invalid (unless skip_invalid), if none is usable, or if raw text and
    chat records are mixed. Duplicates are kept: `split_dataset` removes them.
    """
    path = Path(path).expanduser()
    normalized, _, problems = _normalise_all(path)
    for item in normalized:
        problems.extend(i for i in item.issues if i.severity == "error")
    problems.sort(key=lambda i: i.line)
    examples = [item.example for item in normalized if item.valid]
    where = location_kind(path)
    if problems and (not skip_invalid or not examples):
        shown = "\n".join(f"  {where} {i.line}: {i.message}" for i in problems[:5])
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        bad_lines = len({i.line for i in problems})
        total = len(normalized) + sum(1 for i in problems if i.code == "bad_json")
        advice = ("no usable example is left: fix them" if skip_invalid else
                  f"fix them or pass --skip-invalid to drop the invalid records "
                  f"(`ingrain data validate {path}` shows every issue)")
        raise ToolError(f"{path}: {bad_lines} of {total} records are invalid:\n{shown}{more}\n{advice}.")
    if not examples:
        raise ToolError(f"{path} has no examples; add records in one of the accepted formats: {ACCEPTED}.")
    kinds = {"text" if "text" in ex else "chat" for ex in examples}
    if len(kinds) > 1:
        raise ToolError(f"{path} mixes raw `text` records with chat records; training needs one kind. "
                        "Convert the text records to messages or move them to their own dataset.")
    return examples
