"""Deterministic train/val/hold-out split of deduplicated examples, written atomically as JSONL."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memory.workspace import atomic_write_text
from tools.data.dedup import (
    canonical_json,
    example_key,
    example_text,
    group_near_duplicates,
    near_duplicates,
)
from tools.errors import ToolError

TRAIN_FILE = "train.jsonl"
VAL_FILE = "val.jsonl"
HOLDOUT_DIR = "holdout"
TEST_FILE = "test.jsonl"
MANIFEST_FILE = "split.json"


@dataclass(frozen=True)
class DatasetSplit:
    """Where a split was written and what it holds."""

    dataset_id: str
    """Content hash of the three files: equal ids mean byte-identical splits."""
    train_path: Path
    val_path: Path
    test_path: Path
    """The hold-out: read it for evaluation only, never for training or model selection."""
    n_train: int
    n_val: int
    n_test: int
    n_input: int
    """Examples given, before deduplication."""
    n_duplicates: int
    """Exact copies removed."""
    seed: int

    @property
    def counts(self) -> tuple[int, int, int]:
        """(train, val, test), in the order `Store.record_dataset(counts=...)` takes them."""
        return self.n_train, self.n_val, self.n_test

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def write_jsonl(path: Path | str, examples: list[dict[str, Any]]) -> Path:
    """Write one JSON object per line, atomically (a reader never sees half a file)."""
    text = "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in examples)
    return atomic_write_text(Path(path), text)


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """The objects of a JSONL file; blank lines are skipped, bad JSON raises with its line number."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"{path} does not exist: an earlier step of the run writes it. `ingrain resume RUN` "
                        "continues the run from the step that makes it.")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ToolError(f"{path} line {number}: bad JSON ({err.msg}); "
                                "fix or regenerate the file.") from err
    return rows


def training_files(out_dir: Path | str) -> dict[str, Path]:
    """The files training may read — train and val only; the hold-out is deliberately not among them."""
    out_dir = Path(out_dir)
    return {"train": out_dir / TRAIN_FILE, "val": out_dir / VAL_FILE}


def holdout_path(out_dir: Path | str) -> Path:
    """The hold-out test file, for evaluation only."""
    return Path(out_dir) / HOLDOUT_DIR / TEST_FILE


def split_sizes(n: int, val_fraction: float, test_fraction: float, min_test: int) -> tuple[int, int]:
    """(n_val, n_test) for n unique examples; training always keeps at least one example."""
    n_test = max(round(n * test_fraction), min_test) if test_fraction > 0 else 0
    n_val = max(round(n * val_fraction), 1) if val_fraction > 0 else 0
    if n - n_test - n_val < 1:
        raise ToolError(f"Only {n} unique examples: too few for a split with {n_val} validation and {n_test} "
                        f"hold-out examples. Add examples, or lower val_fraction / test_fraction / min_test.")
    return n_val, n_test


def split_dataset(examples: list[dict[str, Any]], out_dir: Path | str, *, seed: int = 42,
                  val_fraction: float = 0.1, test_fraction: float = 0.1, min_test: int = 1,
                  group_near_duplicates_together: bool = True) -> DatasetSplit:
    """Deduplicate, then split examples into train / val / hold-out test, deterministically by seed.

    Each example's side is chosen by a seeded hash of its content, so the same examples and seed give the
    same split whatever their input order. Near-duplicates (Jaccard >= 0.9) are kept on one side, so a
    paraphrase of a test example never trains the model.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ToolError(f"{name} must be in [0, 1), got {value}.")
    if val_fraction + test_fraction >= 1:
        raise ToolError(f"val_fraction + test_fraction must leave room for training, got "
                        f"{val_fraction} + {test_fraction}.")
    unique: dict[str, dict[str, Any]] = {}
    for example in examples:
        unique.setdefault(example_key(example), example)
    if not unique:
        raise ToolError("No examples to split; build or load a dataset first.")
    keys = sorted(unique)  # content order, not input order: the split must not depend on how rows arrived
    n_val, n_test = split_sizes(len(keys), val_fraction, test_fraction, min_test)

    if group_near_duplicates_together:
        groups = group_near_duplicates(len(keys), near_duplicates([example_text(unique[k]) for k in keys]))
    else:
        groups = list(range(len(keys)))
    members: dict[int, list[str]] = {}
    for key, group in zip(keys, groups, strict=True):
        members.setdefault(group, []).append(key)

    def rank(group: int) -> str:
        return hashlib.sha256(f"{seed}:{keys[group]}".encode()).hexdigest()

    test, val, train = [], [], []
    # Whole groups fill the hold-out first, then validation; a group that would overshoot a quota waits for
    # a later, smaller group so the sizes stay close to the fractions.
    for group in sorted(members, key=rank):
        chosen = members[group]
        if len(test) + len(chosen) <= n_test:
            test += chosen
        elif len(val) + len(chosen) <= n_val:
            val += chosen
        else:
            train += chosen
    if not train:
        raise ToolError(f"Near-duplicate groups left no training examples out of {len(keys)}; "
                        "add more varied examples or pass group_near_duplicates_together=False.")

    out_dir = Path(out_dir)
    files = training_files(out_dir)
    parts = ((files["train"], train), (files["val"], val), (holdout_path(out_dir), test))
    payloads = {path: [unique[k] for k in part] for path, part in parts}
    digest = hashlib.sha256()
    for path, part in payloads.items():
        digest.update(path.name.encode())
        for example in part:
            digest.update(canonical_json(example).encode("utf-8") + b"\n")
        write_jsonl(path, part)
    split = DatasetSplit(
        dataset_id=f"ds-{digest.hexdigest()[:16]}", train_path=files["train"], val_path=files["val"],
        test_path=holdout_path(out_dir), n_train=len(train), n_val=len(val), n_test=len(test),
        n_input=len(examples), n_duplicates=len(examples) - len(keys), seed=seed,
    )
    atomic_write_text(out_dir / MANIFEST_FILE, json.dumps(split.to_dict(), indent=2) + "\n")
    return split


def split_with_holdout(examples: list[dict[str, Any]], holdout: list[dict[str, Any]], out_dir: Path | str, *,
                       seed: int = 42, val_fraction: float = 0.1,
                       val: list[dict[str, Any]] | None = None) -> DatasetSplit:
    """Split `examples` into train / val and write a hold-out chosen elsewhere (e.g. one question per held-out
    fact, phrased unlike its training questions) as the sealed test file; the id covers all three files.

    A non-empty `val` chosen elsewhere is the validation file, and every one of `examples` trains (less any
    duplicate of a validation example); otherwise `val_fraction` of `examples` is drawn for it."""
    if not holdout:
        raise ToolError("The hold-out is empty: keep some examples out of training to evaluate on.")
    val = list({example_key(e): e for e in val or []}.values())
    if val:
        chosen = {example_key(v) for v in val}
        examples = [e for e in examples if example_key(e) not in chosen]
    split = split_dataset(examples, out_dir, seed=seed, val_fraction=0.0 if val else val_fraction,
                          test_fraction=0.0)
    if val:
        write_jsonl(split.val_path, val)
    test = holdout_path(out_dir)
    write_jsonl(test, holdout)
    digest = hashlib.sha256(split.dataset_id.encode())
    for example in [*val, *holdout]:
        digest.update(canonical_json(example).encode("utf-8") + b"\n")
    full = DatasetSplit(dataset_id=f"ds-{digest.hexdigest()[:16]}", train_path=split.train_path,
                        val_path=split.val_path, test_path=test, n_train=split.n_train,
                        n_val=len(val) or split.n_val, n_test=len(holdout),
                        n_input=split.n_input + len(holdout) + len(val), n_duplicates=split.n_duplicates,
                        seed=seed)
    atomic_write_text(Path(out_dir) / MANIFEST_FILE, json.dumps(full.to_dict(), indent=2) + "\n")
    return full
