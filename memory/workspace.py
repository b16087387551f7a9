"""Where ingrain keeps its files: one workspace folder, `INGRAIN_HOME` (default `./.ingrain`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """The folders and database files of one ingrain workspace."""

    root: Path
    """Top folder; everything ingrain writes lives below it."""

    @classmethod
    def from_env(cls) -> Workspace:
        """The workspace named by `INGRAIN_HOME`, or `./.ingrain`."""
        return cls(Path(os.environ.get("INGRAIN_HOME", ".ingrain")).expanduser().resolve())

    @property
    def db_path(self) -> Path:
        return self.root / "ingrain.db"

    @property
    def checkpoints_path(self) -> Path:
        return self.root / "checkpoints.db"

    @property
    def models_dir(self) -> Path:
        """Base-model cache; `INGRAIN_MODEL_CACHE` may point several workspaces at one cache."""
        override = os.environ.get("INGRAIN_MODEL_CACHE")
        return Path(override).expanduser().resolve() if override else self.root / "models"

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def run_dir(self, run_id: int | str) -> Path:
        return self.root / "runs" / str(run_id)

    def ensure(self) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        return self


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside `final`; rename it to `final` only if the block succeeds.

    A reader therefore sees either no folder or a complete one, never a half-written one.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temp file, fsync and a rename: a reader (or a process killed mid-write)
    sees the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; see `atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))
