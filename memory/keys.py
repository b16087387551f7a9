"""API keys for the endpoint: created once and shown once, stored as sha256 hashes, revocable."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from memory.errors import StoreError
from memory.store import Store

KEY_PREFIX = "ingr-"


def hash_key(key: str) -> str:
    """The sha256 a key is stored and looked up by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Store, name: str) -> str:
    """Make a new API key named `name`; only its sha256 is stored, so the returned key is shown once."""
    name = name.strip()
    if not name:
        raise StoreError("An API key needs a name (`ingrain keys create --name laptop`).")
    key = KEY_PREFIX + secrets.token_urlsafe(30)
    with store.transaction():
        store.db["api_keys"].insert({"name": name, "prefix": key[:len(KEY_PREFIX) + 4], "hash": hash_key(key),
                                     "created": time.time(), "revoked": None})
    return key


def verify_key(store: Store, key: str | None) -> dict[str, Any] | None:
    """The key's row (id, name, prefix) if `key` is a live key, else None."""
    if not key:
        return None
    rows = list(store.db["api_keys"].rows_where("hash = ? AND revoked IS NULL", [hash_key(key)], limit=1))
    return {k: rows[0][k] for k in ("id", "name", "prefix")} if rows else None


def live_key_hashes(store: Store) -> dict[str, int]:
    """hash → key id for every key not revoked (what a server caches to check keys without a query)."""
    rows = store.db.conn.execute("SELECT hash, id FROM api_keys WHERE revoked IS NULL").fetchall()
    return {h: int(i) for h, i in rows}


def api_keys(store: Store) -> list[dict[str, Any]]:
    """Keys without their hashes."""
    return [{k: r[k] for k in ("id", "name", "prefix", "created", "revoked")}
            for r in store.db["api_keys"].rows_where(order_by="id")]


def revoke_key(store: Store, key_id: int) -> None:
    with store.transaction():
        changed = store.db.conn.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                        (time.time(), int(key_id))).rowcount
    if not changed:
        raise StoreError(f"No live API key with id {key_id}; `ingrain keys list` shows them.")
