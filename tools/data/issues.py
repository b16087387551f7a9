"""The problems dataset validation reports: one code per kind, each with a fixed severity and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

# Errors make a dataset unusable as it stands (training would fail, learn the wrong thing, or leak the
# evaluation); warnings are worth a look but training handles them (duplicates are removed before the
# split, over-long examples are truncated).
ISSUE_CODES: dict[str, tuple[Severity, str]] = {
    "missing_file": ("error", "the path does not exist"),
    "unreadable_file": ("error", "not a JSONL/JSON/CSV/Parquet file or `datasets` folder, or unreadable"),
    "bad_json": ("error", "a line or file that is not valid JSON"),
    "not_an_object": ("error", "a record that is not a JSON object"),
    "unknown_format": ("error", "a record with none of the accepted key sets"),
    "bad_field": ("error", "a field of the wrong type (e.g. `messages` not a list of {role, content})"),
    "unknown_role": ("error", "a role other than system/user/assistant (ShareGPT: system/human/gpt)"),
    "missing_assistant": ("error", "no assistant turn: nothing to learn from"),
    "empty_assistant": ("error", "an assistant turn with empty content"),
    "empty_turn": ("error", "a user turn or `text` with empty content"),
    "turn_order": ("error", "assistant first, two turns of one role in a row, or system not first"),
    "mixed_text_and_chat": ("error", "raw `text` records mixed with chat records in one dataset"),
    "train_val_overlap": ("error", "a training example that also appears in the validation file"),
    "empty_dataset": ("error", "no records at all"),
    "empty_system": ("warning", "a system turn with empty content"),
    "unanswered_turn": ("warning", "the last turn is a user turn, which carries no loss"),
    "too_long": ("warning", "longer than --context-length tokens; training truncates it"),
    "duplicate": ("warning", "an exact copy of an earlier example; removed before the split"),
    "near_duplicate": ("warning", "almost the same as an earlier example (Jaccard >= 0.9); kept on one side "
                                  "of the split"),
    "raw_text": ("warning", "plain `text` records: trained as language modelling, not as chat turns"),
}


@dataclass(frozen=True)
class Issue:
    """One problem found in a dataset, pointing at the line (or row) it comes from."""

    line: int
    """1-based line or row of the record; 0 when the issue is about the whole dataset."""
    code: str
    """One of ISSUE_CODES."""
    message: str
    """What is wrong and how to fix it."""
    severity: Severity
    """`error` fails validation; `warning` does not."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def issue(line: int, code: str, message: str) -> Issue:
    """An Issue whose severity comes from ISSUE_CODES, so one code never has two severities."""
    return Issue(line, code, message, ISSUE_CODES[code][0])


def severities_help() -> str:
    """The codes and their severities as text for `--help`."""
    return "\n".join(f"{severity:<7} {code}: {text}" for code, (severity, text) in ISSUE_CODES.items())
