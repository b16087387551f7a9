"""Readers: every supported source yields its records with the line or row each came from."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tools.data.readers import location_kind, read_records
from tools.errors import ToolError

CHAT = {"messages": [{"role": "user", "content": "What is a loss?"},
                     {"role": "assistant", "content": "A number training makes smaller."}]}
ALPACA = {"instruction": "Summarise", "input": "a long text", "output": "short"}


def test_jsonl_keeps_line_numbers_skips_blank_lines_and_marks_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(CHAT) + "\n\n" + json.dumps(ALPACA) + "\n{not json\n")
    records = read_records(path)
    assert [r.line for r in records] == [1, 3, 4]
    assert records[0].data == CHAT and records[1].data == ALPACA
    assert records[2].data is None and "bad JSON" in records[2].error


def test_json_list_records_point_at_the_line_where_each_element_starts(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([CHAT, ALPACA], indent=2))
    records = read_records(path)
    lines = path.read_text().splitlines()
    assert [r.data for r in records] == [CHAT, ALPACA]
    assert lines[records[0].line - 1].strip() == "{"
    assert '"messages"' in lines[records[0].line]
    assert '"instruction"' in lines[records[1].line]


def test_json_data_object_is_read_past_other_top_level_keys(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"version": [1, {"x": "]"}], "data": [ALPACA, CHAT]}, indent=2))
    records = read_records(path)
    lines = path.read_text().splitlines()
    assert [r.data for r in records] == [ALPACA, CHAT]
    assert '"instruction"' in lines[records[0].line]


def test_broken_json_file_is_one_bad_record_at_the_error_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b",}\n]')
    [record] = read_records(path)
    assert record.line == 3 and "bad JSON" in record.error


def test_json_with_a_scalar_or_an_object_without_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"rows": [CHAT]}))
    with pytest.raises(ToolError, match="list of records"):
        read_records(path)


def test_csv_rows_keep_their_start_line_and_decode_json_cells(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["instruction", "input", "output"])
        writer.writerow(["Summarise", "line one\nline two", "short"])  # a quoted cell spanning two lines
        writer.writerow(["Translate", "[1, 2]", "[draft] done"])  # bracketed text stays text
    chat_path = tmp_path / "chat.csv"
    with chat_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["messages"])
        writer.writerow([json.dumps(CHAT["messages"])])
    records = read_records(path)
    assert [r.line for r in records] == [2, 4]
    assert records[0].data == {"instruction": "Summarise", "input": "line one\nline two", "output": "short"}
    assert records[1].data == {"instruction": "Translate", "input": "[1, 2]", "output": "[draft] done"}
    assert read_records(chat_path)[0].data == CHAT


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([CHAT, CHAT]), path)
    records = read_records(path)
    assert [r.line for r in records] == [1, 2]
    assert records[0].data == CHAT
    assert location_kind(path) == "row"


def test_saved_datasets_folder_is_read_and_a_dict_uses_its_train_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    Dataset.from_list([ALPACA, ALPACA | {"output": "other"}]).save_to_disk(str(tmp_path / "single"))
    records = read_records(tmp_path / "single")
    assert [r.line for r in records] == [1, 2]
    assert records[1].data["output"] == "other"
    assert location_kind(tmp_path / "single") == "row"

    DatasetDict({"train": Dataset.from_list([CHAT]), "test": Dataset.from_list([ALPACA])}).save_to_disk(
        str(tmp_path / "splits"))
    assert [r.data for r in read_records(tmp_path / "splits")] == [CHAT]


def test_missing_unsupported_and_plain_folders_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "d.txt").write_text("hello")
    with pytest.raises(ToolError, match=r"unsupported file type '\.txt'.*\.jsonl"):
        read_records(tmp_path / "d.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ToolError, match="not a saved `datasets` folder"):
        read_records(tmp_path / "folder")
