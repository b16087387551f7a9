"""validate_dataset reports each problem at its line; load_examples refuses invalid data unless asked."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from tools.data.validate import load_examples, measure_lengths, validate_dataset
from tools.errors import ToolError


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def write_lines(path: Path, rows: list) -> Path:
    """One row per line; strings are written verbatim (for broken JSON), anything else as JSON."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


LONG_ANSWER = ("The model reads the wiki pages, keeps the headings, and writes a short summary of the "
               "method, the results and the open questions in three bullet points for the reader.")


def test_every_record_level_problem_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [
        chat("What is a loss?", "A number training makes smaller."),                      # 1 fine
        '{"messages": [}',                                                                 # 2 bad JSON
        {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]},  # 3 role
        {"messages": [{"role": "user", "content": "only a question"}]},                   # 4 no reply
        chat("Question with an empty reply", "   "),                                      # 5 empty reply
        {"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"},
                      {"role": "assistant", "content": "z"}]},                              # 6 order
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                      {"role": "assistant", "content": "c"}]},                              # 7 order
        {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
                      {"role": "assistant", "content": "c"}]},                              # 8 order
        {"question": "q", "answer": "a"},                                                  # 9 unknown
        chat("What is a loss?", "A number training makes smaller."),                      # 10 duplicate of 1
    ])
    report = validate_dataset(path)
    found = {(i.code, i.line) for i in report.issues}
    assert {("bad_json", 2), ("unknown_role", 3), ("missing_assistant", 4), ("empty_assistant", 5),
            ("turn_order", 6), ("turn_order", 7), ("turn_order", 8), ("unknown_format", 9),
            ("duplicate", 10)} <= found
    assert not report.ok
    assert report.n_records == 10 and report.n_valid == 2
    assert report.formats == {"openai": 8, "unknown": 1}
    duplicate = next(i for i in report.issues if i.code == "duplicate")
    assert duplicate.severity == "warning" and "line 1" in duplicate.message
    assert json.loads(json.dumps(report.to_dict()))["issue_counts"]["turn_order"] == 3


def test_a_clean_dataset_is_ok_and_its_lengths_are_summarised(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [chat(f"Question number {i}?", "x" * (40 * i)) for i in range(1, 21)])
    report = validate_dataset(path)
    assert report.ok and report.issues == []
    stats = report.lengths
    assert stats.method == "estimate" and stats.context_length == 2048 and stats.over_limit == 0
    assert stats.min < stats.p50 < stats.p95 <= stats.max
    assert stats.max == measure_lengths([chat("Question number 20?", "x" * 800)])[0]


def test_over_long_examples_are_warnings_at_their_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [chat("short", "short"), chat("long", "word " * 200)])
    report = validate_dataset(path, context_length=100)
    [too_long] = [i for i in report.issues if i.code == "too_long"]
    assert too_long.line == 2 and too_long.severity == "warning" and "> context length 100" in too_long.message
    assert report.lengths.over_limit == 1
    assert report.ok


def test_lengths_use_the_tokenizer_chat_template_when_given(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tools.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    examples = [chat("what is the loss", "the loss is a number"), chat("hi", "the model returns a list")]
    path = write_lines(tmp_path / "d.jsonl", examples)
    report = validate_dataset(path, tokenizer=tokenizer, context_length=4096)
    expected = [len(tokenizer.apply_chat_template(e["messages"], tokenize=True, return_dict=True)["input_ids"])
                for e in examples]
    assert report.lengths.method == "tokenizer"
    assert (report.lengths.min, report.lengths.max) == (min(expected), max(expected))


def test_near_duplicates_are_warnings_and_different_examples_are_not(tmp_path: Path) -> None:
    other = ("Gradient descent moves every weight a small step against the gradient of the loss, and the "
             "learning rate sets how large that step is for each update of the model.")
    path = write_lines(tmp_path / "d.jsonl", [
        chat("Summarise the paper on wiki style", LONG_ANSWER),
        chat("Explain gradient descent", other),
        chat("Summarise the paper on wiki style", LONG_ANSWER.replace("reader.", "readers.")),
    ])
    report = validate_dataset(path)
    [near] = [i for i in report.issues if i.code == "near_duplicate"]
    assert near.line == 3 and "line 1" in near.message and near.severity == "warning"
    assert report.ok


def test_validation_overlap_is_an_error_at_the_training_line(tmp_path: Path) -> None:
    train = write_lines(tmp_path / "train.jsonl", [chat("a question", "an answer"), chat("shared", "same")])
    val = write_lines(tmp_path / "val.jsonl", [chat("other", "thing"), chat("shared", "same")])
    report = validate_dataset(train, val_path=val)
    [overlap] = [i for i in report.issues if i.code == "train_val_overlap"]
    assert overlap.line == 2 and "val.jsonl line 2" in overlap.message
    assert not report.ok
    assert report.to_dict()["val_path"] == str(val)


def test_missing_empty_and_unsupported_sources_are_errors_not_exceptions(tmp_path: Path) -> None:
    missing = validate_dataset(tmp_path / "nope.jsonl")
    assert [i.code for i in missing.issues] == ["missing_file"] and not missing.ok
    (tmp_path / "empty.jsonl").write_text("\n")
    empty = validate_dataset(tmp_path / "empty.jsonl")
    assert [i.code for i in empty.issues] == ["empty_dataset"] and not empty.ok and empty.lengths is None
    (tmp_path / "d.txt").write_text("hello")
    assert [i.code for i in validate_dataset(tmp_path / "d.txt").issues] == ["unreadable_file"]


def test_raw_text_is_a_warning_but_mixing_it_with_chat_is_an_error(tmp_path: Path) -> None:
    text_only = validate_dataset(write_lines(tmp_path / "t.jsonl", [{"text": "one"}, {"text": "two"}]))
    assert text_only.ok and [i.code for i in text_only.issues] == ["raw_text"]
    assert text_only.formats == {"text": 2}
    mixed = validate_dataset(write_lines(tmp_path / "m.jsonl", [chat("q", "a"), chat("r", "b"), {"text": "t"}]))
    [error] = [i for i in mixed.issues if i.code == "mixed_text_and_chat"]
    assert error.line == 3 and not mixed.ok


def test_parquet_issues_point_at_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "p", "completion": "c"}, {"prompt": "p2", "completion": ""}]),
                   path)
    report = validate_dataset(path)
    assert report.location == "row" and report.formats == {"completion": 2}
    assert [(i.code, i.line) for i in report.issues] == [("empty_assistant", 2)]


def test_a_json_file_holding_jsonl_is_read_line_by_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.json", [chat("q", "a"), {"messages": [{"role": "user", "content": "q"}]}])
    report = validate_dataset(path)
    assert report.n_records == 2 and [(i.code, i.line) for i in report.issues] == [("missing_assistant", 2)]


def test_context_length_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="context_length"):
        validate_dataset(write_lines(tmp_path / "d.jsonl", [chat("q", "a")]), context_length=0)


def test_validating_ten_thousand_records_finds_planted_near_duplicates(tmp_path: Path) -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(3000)]
    rows = [chat(" ".join(rng.choices(vocab, k=10)), " ".join(rng.choices(vocab, k=60))) for _ in range(10_000)]
    planted = {}
    for source in range(0, 10_000, 1000):
        copy = json.loads(json.dumps(rows[source]))
        copy["messages"][1]["content"] += " extra"  # one more word: Jaccard about 0.97
        rows.append(copy)
        planted[len(rows)] = source + 1
    path = write_lines(tmp_path / "big.jsonl", rows)
    started = time.perf_counter()
    report = validate_dataset(path)
    elapsed = time.perf_counter() - started
    near = {i.line: i.message for i in report.issues if i.code == "near_duplicate"}
    assert set(near) == set(planted)
    assert all(f"line {planted[line]} " in message for line, message in near.items())
    # Typically 3-6 s on 2 busy cores; the bound only catches a quadratic regression.
    assert elapsed < 60


def test_load_examples_lists_the_first_errors_and_how_to_proceed(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [
        chat("q", "a"), "{broken", {"messages": [{"role": "user", "content": "q"}]}, {"prompt": "p", "completion": "c"},
    ])
    with pytest.raises(ToolError) as err:
        load_examples(path)
    message = str(err.value)
    assert "line 2:" in message and "line 3:" in message
    assert "2 of 4 records are invalid" in message
    assert "fix them or pass --skip-invalid" in message
    assert load_examples(path, skip_invalid=True) == [chat("q", "a"), chat("p", "c")]


def test_load_examples_normalises_every_format_of_a_mixed_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [
        chat("Hi", "Hello!"),
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
        {"instruction": "Hi", "output": "Hello!"},
        {"prompt": "Hi", "completion": "Hello!"},
    ])
    assert load_examples(path) == [chat("Hi", "Hello!")] * 4


def test_load_examples_refuses_unknown_formats_mixed_kinds_and_missing_files(tmp_path: Path) -> None:
    unknown = write_lines(tmp_path / "u.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(ToolError, match=r"keys \['answer', 'question'\].*accepted formats: `messages`"):
        load_examples(unknown, skip_invalid=True)
    mixed = write_lines(tmp_path / "m.jsonl", [chat("q", "a"), {"text": "t"}])
    with pytest.raises(ToolError, match="mixes raw `text` records with chat"):
        load_examples(mixed)
    with pytest.raises(ToolError, match="does not exist"):
        load_examples(tmp_path / "nope.jsonl")
    assert load_examples(write_lines(tmp_path / "t.jsonl", [{"text": "raw"}])) == [{"text": "raw"}]
