"""`ingrain data validate`: tables or one JSON document, exit 0 on warnings only, 1 on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.data import data_app

runner = CliRunner()
WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def invoke(*args: str):
    return runner.invoke(data_app, ["validate", *args], env=WIDE)


def test_clean_dataset_exits_zero_with_summary_and_lengths(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [chat("q1", "a1"), chat("q2", "a2 longer answer")])
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert "records" in result.stdout and "Token lengths (estimate)" in result.stdout
    assert "ok: 2 valid examples" in result.stdout


def test_errors_exit_one_and_list_issues_with_line_numbers(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [chat("q", "a"), "{broken", {"messages": [{"role": "user",
                                                                                         "content": "q"}]}])
    result = invoke(str(path))
    assert result.exit_code == 1
    rows = [line for line in result.stdout.splitlines() if "bad_json" in line or "missing_assistant" in line]
    assert any(row.split("│")[1].strip() == "2" for row in rows if "bad_json" in row)
    assert any(row.split("│")[1].strip() == "3" for row in rows if "missing_assistant" in row)
    assert "2 errors" in result.stdout
    assert "Traceback" not in result.output


def test_json_is_one_document_and_warnings_do_not_fail(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [chat("q", "a"), chat("q", "a"), chat("long", "word " * 300)])
    result = invoke(str(path), "--json", "--context-length", "64")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["n_records"] == 3
    assert {(i["code"], i["line"], i["severity"]) for i in document["issues"]} == {
        ("duplicate", 2, "warning"), ("too_long", 3, "warning")}
    assert document["lengths"]["context_length"] == 64 and document["lengths"]["over_limit"] == 1


def test_json_errors_exit_one_with_the_report(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [{"question": "q"}])
    result = invoke(str(path), "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["issues"][0]["code"] == "unknown_format"
    assert "accepted formats" in document["issues"][0]["message"]


def test_missing_file_says_what_to_do_without_a_traceback(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "check the path" in result.stderr and not result.stdout
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    as_json = invoke(str(tmp_path / "nope.jsonl"), "--json")
    error = json.loads(as_json.stdout)["error"]  # nothing was read: the command failed, in the common shape
    assert as_json.exit_code == 1 and error["type"] == "ToolError" and error["exit_code"] == 1
    assert "does not exist" in error["message"]


def test_unknown_format_names_keys_and_formats(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    result = invoke(str(path))
    assert result.exit_code == 1
    assert "['answer', 'question']" in result.stdout and "conversations" in result.stdout


def test_base_tokenizer_measures_lengths_and_a_bad_base_is_a_clean_error(tmp_path: Path,
                                                                         tiny_model_dir: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [chat("what is the loss", "a number")])
    result = invoke(str(path), "--json", "--base", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["lengths"]["method"] == "tokenizer"
    bad = invoke(str(path), "--json", "--base", str(tmp_path / "no-such-model"))
    assert bad.exit_code == 1
    assert "does not download" in json.loads(bad.stdout)["error"]["message"]
    bad_text = invoke(str(path), "--base", str(tmp_path / "no-such-model"))
    assert bad_text.exit_code == 1 and "error:" in bad_text.stderr and "Traceback" not in bad_text.output


def test_val_overlap_fails(tmp_path: Path) -> None:
    train = write_lines(tmp_path / "train.jsonl", [chat("q", "a"), chat("r", "b")])
    val = write_lines(tmp_path / "val.jsonl", [chat("r", "b")])
    result = invoke(str(train), "--val", str(val), "--json")
    assert result.exit_code == 1
    assert [i["code"] for i in json.loads(result.stdout)["issues"]] == ["train_val_overlap"]


def test_help_documents_severities() -> None:
    result = runner.invoke(data_app, ["validate", "--help"], env=WIDE)
    assert result.exit_code == 0
    for text in ("errors (exit 1)", "warnings (reported, exit 0)", "near_duplicate", "turn_order"):
        assert text in result.stdout


@pytest.mark.real_model
def test_default_base_measures_lengths_with_the_smollm2_template(tmp_path: Path, smollm2_dir: Path) -> None:
    from tools.models import load_tokenizer

    example = chat("Summarise the paper in one line.", "It trains a small model on a wiki.")
    path = write_lines(tmp_path / "d.jsonl", [example])
    result = invoke(str(path), "--json", "--base", "smollm2-135m")
    assert result.exit_code == 0, result.output
    expected = load_tokenizer(smollm2_dir).apply_chat_template(example["messages"], tokenize=True,
                                                               return_dict=True)["input_ids"]
    lengths = json.loads(result.stdout)["lengths"]
    assert lengths["method"] == "tokenizer" and lengths["max"] == len(expected)
