"""split_dataset: deterministic, deduplicated, hold-out kept apart; JSONL helpers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tools.data.dedup import example_key
from tools.data.split import (
    holdout_path,
    read_jsonl,
    split_dataset,
    split_sizes,
    training_files,
    write_jsonl,
)
from tools.errors import ToolError


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def examples(n: int) -> list[dict]:
    rng = random.Random(n)
    words = ["loss", "model", "style", "wiki", "paper", "summary", "bullet", "method", "result", "data",
             "train", "answer", "note"]
    return [chat(f"Question {i}: {' '.join(rng.choices(words, k=6))}?",
                 f"Answer {i}: {' '.join(rng.choices(words, k=12))}.") for i in range(n)]


def keys(path: Path) -> set[str]:
    return {example_key(e) for e in read_jsonl(path)}


def test_same_examples_and_seed_give_byte_identical_files_in_any_input_order(tmp_path: Path) -> None:
    data = examples(50)
    first = split_dataset(data, tmp_path / "a", seed=7)
    shuffled = data[:]
    random.Random(1).shuffle(shuffled)
    second = split_dataset(shuffled, tmp_path / "b", seed=7)
    assert first.dataset_id == second.dataset_id
    for name in ("train_path", "val_path", "test_path"):
        assert getattr(first, name).read_bytes() == getattr(second, name).read_bytes()
    other_seed = split_dataset(data, tmp_path / "c", seed=8)
    assert other_seed.dataset_id != first.dataset_id
    assert keys(other_seed.test_path) != keys(first.test_path)


def test_sides_are_disjoint_complete_and_sized_by_the_fractions(tmp_path: Path) -> None:
    data = examples(100)
    split = split_dataset(data, tmp_path / "out", val_fraction=0.1, test_fraction=0.2)
    train, val, test = keys(split.train_path), keys(split.val_path), keys(split.test_path)
    assert split.counts == (len(train), len(val), len(test)) == (70, 10, 20)
    assert not (train & val or train & test or val & test)
    assert train | val | test == {example_key(e) for e in data}
    manifest = json.loads((tmp_path / "out" / "split.json").read_text())
    assert manifest["dataset_id"] == split.dataset_id and manifest["n_test"] == 20


def test_duplicates_are_removed_before_splitting(tmp_path: Path) -> None:
    data = examples(30)
    with_copies = data + data[:10] + [json.loads(json.dumps(e)) for e in data[10:15]]
    split = split_dataset(with_copies, tmp_path / "out")
    assert split.n_input == 45 and split.n_duplicates == 15
    assert split.n_train + split.n_val + split.n_test == 30
    assert split.dataset_id == split_dataset(data, tmp_path / "again").dataset_id


def test_near_duplicates_stay_on_one_side(tmp_path: Path) -> None:
    base = ("The summary lists the method, the data, the main result and the open question of the paper in "
            "four short bullet points written in the style of the team wiki")
    family = [chat("Summarise the paper", base + ending) for ending in (".", "!", " .", " today.")]
    data = examples(40) + family
    for seed in range(5):
        split = split_dataset(data, tmp_path / f"s{seed}", seed=seed, val_fraction=0.2, test_fraction=0.2)
        sides = [keys(p) for p in (split.train_path, split.val_path, split.test_path)]
        holding = [side for side in sides if any(example_key(e) in side for e in family)]
        assert len(holding) == 1
        assert {example_key(e) for e in family} <= holding[0]


def test_training_files_never_include_the_holdout(tmp_path: Path) -> None:
    split = split_dataset(examples(20), tmp_path / "out")
    files = training_files(tmp_path / "out")
    assert files == {"train": tmp_path / "out" / "train.jsonl", "val": tmp_path / "out" / "val.jsonl"}
    assert split.test_path not in files.values()
    assert holdout_path(tmp_path / "out") == split.test_path == tmp_path / "out" / "holdout" / "test.jsonl"
    assert split.test_path.parent != split.train_path.parent
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_split_sizes_keep_a_minimum_hold_out_and_refuse_too_little_data(tmp_path: Path) -> None:
    assert split_sizes(10, 0.1, 0.1, min_test=3) == (1, 3)
    assert split_sizes(10, 0.0, 0.0, min_test=3) == (0, 0)
    with pytest.raises(ToolError, match="Only 2 unique examples"):
        split_dataset([chat("a", "b"), chat("c", "d"), chat("a", "b")], tmp_path / "out")
    with pytest.raises(ToolError, match="val_fraction"):
        split_dataset(examples(10), tmp_path / "out", val_fraction=1.5)
    with pytest.raises(ToolError, match="No examples"):
        split_dataset([], tmp_path / "out")


def test_jsonl_round_trip_and_bad_lines(tmp_path: Path) -> None:
    rows = [chat("héllo", "wörld"), {"text": "raw"}]
    path = write_jsonl(tmp_path / "sub" / "x.jsonl", rows)
    assert read_jsonl(path) == rows
    assert "héllo" in path.read_text(encoding="utf-8")
    path.write_text(json.dumps(rows[0]) + "\n\n{oops\n")
    with pytest.raises(ToolError, match="line 3: bad JSON"):
        read_jsonl(path)
    with pytest.raises(ToolError, match="does not exist"):
        read_jsonl(tmp_path / "none.jsonl")


def test_a_hold_out_chosen_elsewhere_is_sealed_as_the_test_file(tmp_path) -> None:
    from tools.data.split import split_with_holdout

    examples = [{"messages": [{"role": "user", "content": f"When is event {i}?"},
                              {"role": "assistant", "content": f"At {i} o'clock."}]} for i in range(30)]
    holdout = [{"messages": [{"role": "user", "content": f"What time does event {i} start?"},
                             {"role": "assistant", "content": f"At {i} o'clock."}], "meta": {"answer": f"{i}"}}
               for i in range(5)]
    split = split_with_holdout(examples, holdout, tmp_path)
    assert split.counts == (27, 3, 5)
    assert read_jsonl(split.test_path) == holdout  # kept as given, meta included
    trained = {ex["messages"][0]["content"] for ex in read_jsonl(split.train_path) + read_jsonl(split.val_path)}
    assert not trained & {ex["messages"][0]["content"] for ex in holdout}
    again = split_with_holdout(examples, holdout[:4], tmp_path / "other")
    assert again.dataset_id != split.dataset_id  # the id covers the hold-out too

    # Validation chosen elsewhere: every other example trains, and one repeated in the examples does not.
    val = [examples[0], examples[0], {"messages": [{"role": "user", "content": "When is event 7, roughly?"},
                                                   {"role": "assistant", "content": "At 7 o'clock."}]}]
    chosen = split_with_holdout(examples, holdout, tmp_path / "chosen", val=val)
    assert chosen.counts == (29, 2, 5)
    assert read_jsonl(chosen.val_path) == val[1:]
    assert examples[0] not in read_jsonl(chosen.train_path)
    assert json.loads((tmp_path / "chosen" / "split.json").read_text())["n_val"] == 2
    other = split_with_holdout(examples, holdout, tmp_path / "other-val", val=val[2:])
    assert other.dataset_id != chosen.dataset_id  # the id covers the validation file too
