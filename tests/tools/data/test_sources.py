"""Which files ingrain reads, and as what: one set of suffixes for the goal parser, readers and ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.data.ingest import collect_documents, read_documents
from tools.data.readers import read_records
from tools.data.sources import (
    DATASET_SUFFIXES,
    DOCUMENT_SUFFIXES,
    UNREADABLE_DOCUMENT_SUFFIXES,
    is_dataset_file,
    is_document_file,
    is_saved_dataset,
    is_unreadable_document,
)
from tools.errors import ToolError

BODY = "Attention mixes information across tokens, so each position can use the whole context. " * 2


def test_suffixes_are_compared_without_case_and_never_overlap() -> None:
    assert is_dataset_file("Tickets.JSONL") and is_dataset_file(Path("rows.TSV"))
    assert is_document_file("README.MD") and is_document_file("agenda.org")
    assert is_document_file("Paper.PDF") and is_document_file("memo.docx")
    assert is_unreadable_document("Old.DOC") and not is_document_file("old.doc")
    assert not (DATASET_SUFFIXES & DOCUMENT_SUFFIXES or DOCUMENT_SUFFIXES & UNREADABLE_DOCUMENT_SUFFIXES)


def test_every_dataset_suffix_is_one_the_readers_read(tmp_path: Path) -> None:
    row = {"prompt": "hi", "completion": "hello"}
    for suffix in sorted(DATASET_SUFFIXES):
        path = tmp_path / f"d{suffix}"
        if suffix in (".parquet", ".pq"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist([row]), path)
        elif suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            path.write_text(f"prompt{sep}completion\nhi{sep}hello\n")
        elif suffix == ".json":
            path.write_text(json.dumps([row]))
        else:
            path.write_text(json.dumps(row) + "\n")
        assert [r.data for r in read_records(path)] == [row], suffix


def test_every_document_suffix_is_read_by_ingest(tmp_path: Path) -> None:
    from tests.tools.data.test_extract import docx_file, text_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    for i, suffix in enumerate(sorted(DOCUMENT_SUFFIXES)):
        path = folder / f"doc{i}{suffix.upper()}"
        if suffix == ".pdf":
            path.write_bytes(text_pdf([[f"{BODY} Number {i}."]]))
        elif suffix == ".docx":
            docx_file(path, [("Normal", f"{BODY} Number {i}.")])
        else:
            path.write_text(f"{BODY} Number {i}.")
    result = collect_documents([{"kind": "folder", "location": str(folder)}], tmp_path / "docs.jsonl")
    assert result.n_documents == len(DOCUMENT_SUFFIXES), result.dropped


def test_unsupported_formats_are_skipped_and_counted_with_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.md").write_text(f"# Notes\n\n{BODY}")
    (folder / "paper.odt").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    (folder / "memo.DOC").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(range(256)) * 4)
    result = collect_documents([{"kind": "folder", "location": str(folder)},
                                {"kind": "file", "location": str(folder / "paper.odt")}], tmp_path / "d.jsonl")
    assert [d.title for d in read_documents(result.path)] == ["Notes"]
    assert result.dropped["unreadable"] == 3
    assert "cannot read as text (.doc, .odt)" in result.notes[0] and "convert them" in result.notes[0]
    with pytest.raises(ToolError, match=r"Skipped 1 file\(s\) ingrain cannot read as text \(\.odt\): paper\.odt"):
        collect_documents([{"kind": "file", "location": str(folder / "paper.odt")}], tmp_path / "e.jsonl")


def test_a_saved_datasets_folder_is_recognised(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list([{"prompt": "hi", "completion": "hello"}]).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "plain").mkdir()
    assert is_saved_dataset(tmp_path / "saved")
    assert not is_saved_dataset(tmp_path / "plain") and not is_saved_dataset(tmp_path / "missing")
