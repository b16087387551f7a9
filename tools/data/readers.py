"""Read dataset files (JSONL, JSON, CSV, TSV, Parquet, a saved `datasets` folder) into line-numbered records."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.data.sources import JSONL_SUFFIXES, PARQUET_SUFFIXES, is_saved_dataset
from tools.errors import ToolError

SUPPORTED_FILES = (".jsonl / .ndjson, .json (a list or {\"data\": [...]}), .csv, .tsv, .parquet, "
                   "or a `save_to_disk` folder")


@dataclass(frozen=True)
class Record:
    """One raw record as read from a file, before any format detection."""

    line: int
    """1-based line where the record starts (JSONL, JSON, CSV) or 1-based row number (Parquet, datasets)."""
    data: Any = None
    """The decoded record; usually a dict. None when `error` is set."""
    error: str | None = None
    """Why the record could not be decoded (bad JSON), or None."""


def location_kind(path: Path | str) -> str:
    """Whether `Record.line` means a text line or a table row for this source."""
    path = Path(path)
    return "row" if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES else "line"


def read_records(path: Path | str) -> list[Record]:
    """All records of a dataset file or folder; undecodable JSONL lines come back as `Record(error=...)`.

    Raises ToolError when the source is missing, of an unknown kind, or unreadable as a whole.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ToolError(f"{path} does not exist: check the path, or pass a dataset file ({SUPPORTED_FILES}).")
    if path.is_dir():
        return list(_read_saved_dataset(path))
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return list(_read_jsonl(path))
    if suffix == ".json":
        return _read_json(path)
    if suffix in (".csv", ".tsv"):
        return list(_read_csv(path, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix in PARQUET_SUFFIXES:
        return list(_read_parquet(path))
    raise ToolError(f"{path.name}: unsupported file type {suffix or '(none)'!r}; "
                    f"ingrain reads {SUPPORTED_FILES}.")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ToolError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): "
                        "re-save it as UTF-8.") from err


def _read_jsonl(path: Path) -> Iterator[Record]:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield Record(number, json.loads(line))
        except json.JSONDecodeError as err:
            yield Record(number, error=f"bad JSON at column {err.colno}: {err.msg}")


def _read_json(path: Path) -> list[Record]:
    text = _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        # A .json file that is really JSONL is common enough to read as such rather than reject.
        if err.msg == "Extra data" and text.lstrip().startswith("{"):
            return list(_read_jsonl(path))
        return [Record(err.lineno, error=f"bad JSON at column {err.colno}: {err.msg}")]
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        start = _data_array_start(text)
    elif isinstance(document, list):
        start = text.index("[")
    else:
        kind = "an object without a \"data\" list" if isinstance(document, dict) else type(document).__name__
        raise ToolError(f"{path.name} holds {kind}; a .json dataset must be a list of records or "
                        "{\"data\": [records]}. JSONL (one record per line) works too.")
    items = document if isinstance(document, list) else document["data"]
    lines = _element_lines(text, start) if start is not None else None
    if lines is None or len(lines) != len(items):
        lines = list(range(1, len(items) + 1))
    return [Record(line, item) for line, item in zip(lines, items, strict=True)]


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _data_array_start(text: str) -> int | None:
    """Offset of the `[` that opens the top-level "data" value, found by walking the object's keys."""
    decoder = json.JSONDecoder()
    i = _skip_ws(text, text.index("{") + 1)
    while i < len(text) and text[i] != "}":
        key, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, i)
        i = _skip_ws(text, i + 1)  # past ':'
        if key == "data":
            return i
        _, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
    return None


def _element_lines(text: str, start: int) -> list[int] | None:
    """1-based line of each element of the JSON array opening at `start`, so issues point into the file."""
    decoder = json.JSONDecoder()
    lines: list[int] = []
    i = _skip_ws(text, start + 1)
    line, counted_to = 1, 0
    while i < len(text) and text[i] != "]":
        line += text.count("\n", counted_to, i)
        counted_to = i
        lines.append(line)
        try:
            _, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return None
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
    return lines


def _read_csv(path: Path, delimiter: str = ",") -> Iterator[Record]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            return
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise ToolError(f"{path.name} line {start}: unreadable {path.suffix[1:].upper()} ({err}); "
                                "fix the quoting there.") from err
            # A `messages` column exported to CSV holds JSON; decode it so chat data survives the round trip.
            yield Record(start, {key: _maybe_json(value) for key, value in row.items() if key is not None})


def _maybe_json(value: str | None) -> Any:
    """A cell holding a JSON list of objects (a message list) decoded; any other text left as it is."""
    if value is None:
        return None
    stripped = value.strip()
    if stripped.startswith("[{"):
        try:
            decoded = json.loads(stripped)
        except json.JSONDecodeError:
            return value
        if isinstance(decoded, list) and all(isinstance(item, dict) for item in decoded):
            return decoded
    return value


def _read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:
        raise ToolError(f"{path.name} is not a readable Parquet file ({err}); re-export it.") from err
    for number, row in enumerate(table.to_pylist(), start=1):
        yield Record(number, row)


def _read_saved_dataset(path: Path) -> Iterator[Record]:
    if not is_saved_dataset(path):
        raise ToolError(f"{path} is a folder but not a saved `datasets` folder (no dataset_info.json or "
                        f"dataset_dict.json); pass a file ({SUPPORTED_FILES}) or a `save_to_disk` folder.")
    from datasets import DatasetDict, load_from_disk

    dataset = load_from_disk(str(path))
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            splits = ", ".join(dataset)
            raise ToolError(f"{path} holds splits {splits} but no 'train'; pass the split's folder "
                            f"({path}/<split>) instead.")
        dataset = dataset["train"]
    for number, row in enumerate(dataset, start=1):
        yield Record(number, row)
