"""Persistence for ingrain: the SQLite store, the workspace layout and the LangGraph checkpointer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memory.errors import StoreError
from memory.workspace import Workspace

if TYPE_CHECKING:
    from memory.store import Store

__all__ = ["Store", "StoreError", "Workspace"]


def __getattr__(name: str) -> Any:
    # sqlite-utils pulls in pandas (~1.5 s); load it only when a command touches the store.
    if name == "Store":
        from memory.store import Store

        return Store
    raise AttributeError(name)
