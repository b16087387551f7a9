"""What every node may use besides the state: the run id, the workspace, the policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memory import Store, Workspace


@dataclass
class Context:
    """Run-scoped settings; rebuilt from the store whenever a run is continued in a new process."""

    run_id: int
    """The run's id in the store (also the checkpointer's thread id)."""
    home: str
    """The workspace root (INGRAIN_HOME)."""
    policy: str = "interactive"
    """interactive | auto | nightly: which gates ask a person."""
    progress: bool = True
    """Print one line per node start/end, tool call and decision on stderr."""

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.home))

    @property
    def run_dir(self) -> Path:
        path = self.workspace.run_dir(self.run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def store(self) -> Store:
        return Store.open(self.workspace)
