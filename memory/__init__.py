"""Persistence for ingrain: the SQLite store, the workspace layout and the LangGraph checkpointer."""

from memory.store import Store, StoreError
from memory.workspace import Workspace

__all__ = ["Store", "StoreError", "Workspace"]
