"""Tokenization with assistant-only labels, the hold-out guard, and packing that keeps the masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.errors import ToolError
from tools.train.data import IGNORE, build_dataset, count_tokens, read_chat_jsonl, tokenize_conversation

CONVERSATION = [
    {"role": "system", "content": "you are a helpful model"},
    {"role": "user", "content": "what is the summary of the paper?"},
    {"role": "assistant", "content": "- the method is good"},
    {"role": "user", "content": "and the result?"},
    {"role": "assistant", "content": "- the result is a list"},
]


def write_jsonl(path: Path, conversations: list[list[dict[str, str]]]) -> Path:
    path.write_text("\n".join(json.dumps({"messages": c}) for c in conversations) + "\n")
    return path


def target_segments(row: dict[str, list[int]]) -> list[list[int]]:
    """Runs of consecutive label-bearing tokens."""
    segments, current = [], []
    for label in row["labels"]:
        if label != IGNORE:
            current.append(label)
        elif current:
            segments.append(current)
            current = []
    return [*segments, current] if current else segments


@pytest.fixture()
def tokenizer(tiny_model_dir):
    from tools.models import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def test_only_assistant_replies_and_their_end_token_carry_labels(tokenizer):
    row = tokenize_conversation(tokenizer, CONVERSATION)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    segments = target_segments(row)
    assert [tokenizer.decode(s) for s in segments] == ["- the method is good<|im_end|>",
                                                       "- the result is a list<|im_end|>"]
    assert all(s[-1] == end for s in segments)
    # pad == eos must not hide the end token: it is inside the loss.
    assert tokenizer.pad_token_id != end or end in row["labels"]
    labelled = {i for i, label in enumerate(row["labels"]) if label != IGNORE}
    text_without_targets = tokenizer.decode([t for i, t in enumerate(row["input_ids"]) if i not in labelled])
    assert "what is the summary" in text_without_targets and "helpful model" in text_without_targets
    assert "method is good" not in text_without_targets


def test_template_without_generation_markers_gives_the_same_mask(tokenizer):
    marked = tokenize_conversation(tokenizer, CONVERSATION)
    tokenizer.chat_template = tokenizer.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", "")
    unmarked = tokenize_conversation(tokenizer, CONVERSATION)
    assert unmarked == marked


def test_end_token_kept_when_pad_equals_eos(tokenizer):
    tokenizer.pad_token = tokenizer.eos_token
    row = tokenize_conversation(tokenizer, CONVERSATION)
    assert row["labels"].count(tokenizer.eos_token_id) == 2


def test_truncation_drops_examples_without_targets(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [CONVERSATION, CONVERSATION[:3]])
    full = build_dataset(tokenizer, path, max_length=512)
    assert len(full) == 2
    with pytest.raises(ToolError, match="raise max_length"):
        build_dataset(tokenizer, path, max_length=8)


def test_reader_refuses_holdout_and_bad_lines(tmp_path):
    for name in ("test.jsonl", "holdout.jsonl", "data_test.jsonl"):
        with pytest.raises(ToolError, match="hold-out"):
            read_chat_jsonl(write_jsonl(tmp_path / name, [CONVERSATION]))
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(ToolError, match="no assistant"):
        read_chat_jsonl(bad)
    bad.write_text("not json\n")
    with pytest.raises(ToolError, match="train.jsonl:1"):
        read_chat_jsonl(bad)


def test_count_tokens(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [CONVERSATION, CONVERSATION[:3]])
    counts = count_tokens(tokenizer, path)
    rows = [tokenize_conversation(tokenizer, c) for c in (CONVERSATION, CONVERSATION[:3])]
    assert counts["examples"] == 2
    assert counts["tokens"] == sum(len(r["input_ids"]) for r in rows)
    assert 0 < counts["target_tokens"] < counts["tokens"]


def test_packing_keeps_each_examples_ids_and_labels(tokenizer, tiny_model_dir, tmp_path):
    from trl import SFTTrainer

    from tools.models import load_model
    from tools.train.config import TrainConfig
    from tools.train.data import pack_rows
    from tools.train.trainer import sft_args

    conversations = [CONVERSATION[: 3 + 2 * (i % 2)] for i in range(6)]
    conversations = [[*c[:-1], {"role": "assistant", "content": f"- answer {i}"}]
                     for i, c in enumerate(conversations)]
    path = write_jsonl(tmp_path / "train.jsonl", conversations)
    dataset = build_dataset(tokenizer, path, max_length=512)
    config = TrainConfig(max_steps=1, batch_size=1, max_length=256, packing=True)
    packed = pack_rows(dataset, config.max_length)
    trainer = SFTTrainer(model=load_model(tiny_model_dir), args=sft_args(config, tmp_path / "ck", bf16=False,
                                                                          has_val=False),
                         train_dataset=packed, processing_class=tokenizer)
    assert len(trainer.train_dataset) == len(packed) < len(dataset)
    assert all(sum(row["seq_lengths"]) == len(row["input_ids"]) <= config.max_length for row in packed)
    originals = {tuple(r["input_ids"]): r["labels"] for r in dataset}
    segments = 0
    for row in trainer.train_dataset:
        start = 0
        for length in row["seq_lengths"]:
            ids = tuple(row["input_ids"][start:start + length])
            assert row["labels"][start:start + length] == originals[ids]
            start += length
            segments += 1
    assert segments == len(dataset)
    # The collator starts every packed example at position 0, so attention cannot cross examples.
    batch = trainer.data_collator([trainer.train_dataset[0]])
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == len(packed[0]["seq_lengths"])


def test_packed_rows_each_hold_the_mix_not_one_length_class() -> None:
    """Best-fit-decreasing packing puts long examples together; a replay reply must reach every row."""
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    from tools.train.data import pack_rows

    long, short = 90, 30  # a base model's replay reply, a fact's question and answer
    rows = [{"input_ids": [1] * long, "labels": [1] * long} for _ in range(20)]
    rows += [{"input_ids": [2] * short, "labels": [2] * short} for _ in range(120)]
    dataset = Dataset.from_list(rows)

    def long_counts(packed: Dataset) -> list[int]:
        return [sum(n == long for n in row["seq_lengths"]) for row in packed]

    by_length = long_counts(pack_dataset(dataset, 512, "bfd"))
    assert min(by_length) == 0 and max(by_length) >= 5  # the reason pack_rows exists
    mixed = pack_rows(dataset, 512, seed=1)
    assert sum(long_counts(mixed)) == 20 and sum(len(r["seq_lengths"]) for r in mixed) == 140
    assert sum(count > 0 for count in long_counts(mixed)) >= len(mixed) - 1
    assert len(mixed) <= len(pack_dataset(dataset, 512, "bfd")) + 1
