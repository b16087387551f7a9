"""Training data: read train/val chat JSONL and tokenize it with loss on assistant tokens only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError
from tools.train.chat_template import ROLES

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

IGNORE = -100
# The hold-out belongs to evaluation; a training run that read it would report inflated scores.
_HOLDOUT_NAME = re.compile(r"(^|[_\-.])(test|holdout|hold_out|hold-out)([_\-.]|$)", re.IGNORECASE)


def read_chat_jsonl(path: Path | str) -> list[list[dict[str, str]]]:
    """The conversations of a train or val JSONL file; refuses hold-out (test) files."""
    path = Path(path)
    if _HOLDOUT_NAME.search(path.stem):
        raise ToolError(f"{path} looks like a hold-out/test split; training reads only the train and val files "
                        "(pass the train.jsonl and val.jsonl that build_data wrote).")
    if not path.is_file():
        raise ToolError(f"Training data {path} does not exist: run the data step first or pass an existing JSONL.")
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ToolError(f"{path}:{number} is not a {{\"messages\": [...]}} JSON line ({err}); "
                            "validate it with `ingrain data validate`.") from err
        if not any(m.get("role") == "assistant" for m in messages):
            raise ToolError(f"{path}:{number} has no assistant message, so nothing to learn; drop or fix it.")
        bad = [m.get("role") for m in messages if m.get("role") not in ROLES]
        if bad:
            raise ToolError(f"{path}:{number} has unknown role(s) {bad}; use {', '.join(ROLES)}.")
        conversations.append(messages)
    if not conversations:
        raise ToolError(f"{path} holds no examples.")
    return conversations


def has_generation_markers(tokenizer: PreTrainedTokenizerBase) -> bool:
    template = tokenizer.chat_template or ""
    return "{% generation %}" in template or "{%- generation %}" in template


def tokenize_conversation(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]],
                          max_length: int | None = None) -> dict[str, list[int]]:
    """`input_ids` and `labels` (-100 outside assistant replies; each reply's end-of-turn token is kept)."""
    if has_generation_markers(tokenizer):
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
        ids, mask = list(encoded["input_ids"]), list(encoded["assistant_masks"])
    else:
        ids, mask = _mask_by_prefixes(tokenizer, messages)
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]}


def _mask_by_prefixes(tokenizer: PreTrainedTokenizerBase,
                      messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Assistant mask for templates without `{% generation %}`: diff the rendering of growing prefixes.

    A reply's span runs from the end of the prompt rendered with `add_generation_prompt=True` to the end
    of the conversation rendered through that reply, minus trailing whitespace, so it holds the content
    and the end-of-turn token but not the newline the template puts between turns.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False).rstrip()
        if not text.startswith(through) or not through.startswith(prompt):
            raise ToolError("The model's chat template does not render conversations prefix by prefix, so the "
                            "assistant tokens cannot be located. Give the tokenizer a template with "
                            "{% generation %} markers (see tools/train/chat_template.py).")
        spans.append((len(prompt), len(through)))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(start >= a and end <= b for a, b in spans) and end > start)
            for start, end in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), mask


def build_dataset(tokenizer: PreTrainedTokenizerBase, path: Path | str, max_length: int) -> Dataset:
    """A tokenized `datasets.Dataset` (input_ids, labels); examples with no target left after the cut are dropped."""
    from datasets import Dataset

    rows = [tokenize_conversation(tokenizer, messages, max_length) for messages in read_chat_jsonl(path)]
    rows = [row for row in rows if any(label != IGNORE for label in row["labels"])]
    if not rows:
        raise ToolError(f"Every example in {path} lost its assistant reply to max_length={max_length}; "
                        "raise max_length.")
    return Dataset.from_list(rows)


def pack_rows(dataset: Dataset, max_length: int, *, seed: int = 42, window: int = 64) -> Dataset:
    """Whole examples packed into rows of at most `max_length` tokens (input_ids, labels, seq_lengths), taken in a
    seeded shuffled order and each put in the first row with room, so every row is a sample of the whole mix.

    TRL's best-fit-decreasing packing sorts by length first, so examples of one length class share rows: the base
    model's replay replies (longer than a fact's answer) filled 5 of 23 rows of a knowledge set on their own, and
    most optimizer steps saw no replay at all. `seq_lengths` keeps every example's own positions and attention.
    Only the `window` newest rows with room are searched, so packing stays linear in the number of examples.
    """
    import random

    from datasets import Dataset

    order = list(range(len(dataset)))
    random.Random(seed).shuffle(order)
    input_ids, labels = dataset["input_ids"], dataset["labels"]
    shortest = min((len(ids) for ids in input_ids), default=1)
    rows: list[dict[str, list[int]]] = []
    room: list[int] = []
    open_rows: list[int] = []  # rows that may still take an example; the oldest leave past `window`
    for index in order:
        length = min(len(input_ids[index]), max_length)
        slot = next((r for r in open_rows if room[r] >= length), None)
        if slot is None:
            rows.append({"input_ids": [], "labels": [], "seq_lengths": []})
            room.append(max_length)
            slot = len(rows) - 1
            open_rows.append(slot)
            if len(open_rows) > window:
                open_rows.pop(0)
        row = rows[slot]
        row["input_ids"] += input_ids[index][:length]
        row["labels"] += labels[index][:length]
        row["seq_lengths"].append(length)
        room[slot] -= length
        if room[slot] < shortest:
            open_rows.remove(slot)
    return Dataset.from_list(rows)


def count_tokens(tokenizer: PreTrainedTokenizerBase, path: Path | str, max_length: int | None = None
                 ) -> dict[str, Any]:
    """Token counts of a train/val file: examples, all tokens, target tokens, longest example."""
    lengths, targets = [], 0
    for messages in read_chat_jsonl(path):
        row = tokenize_conversation(tokenizer, messages, max_length)
        lengths.append(len(row["input_ids"]))
        targets += sum(label != IGNORE for label in row["labels"])
    return {"examples": len(lengths), "tokens": sum(lengths), "target_tokens": targets,
            "max_tokens": max(lengths), "mean_tokens": round(sum(lengths) / len(lengths), 1)}
