"""The store: migrations, runs, events, registry promote/rollback, run claims across processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memory import Store, StoreError
from memory.checkpoints import run_checkpointer
from memory.schema import MIGRATIONS
from memory.workspace import atomic_dir, atomic_write_text


def test_migrations_run_once_and_record_the_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    version = store.db.conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)
    store.close()
    again = Store(tmp_path / "a.db")  # re-opening must not re-run CREATE TABLE (it would raise)
    assert {"runs", "events", "datasets", "models", "lessons"} <= set(again.db.table_names())
    again.close()


def test_run_lifecycle_and_events_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    first = store.create_run("goal one", "auto", spec={"input": {"goal": "goal one"}})
    second = store.create_run("goal two", "interactive")
    store.record_event(first, "node_start", node="plan", name="plan")
    store.record_event(first, "tool_call", node="plan", name="estimate", data={"args": [1]}, duration_s=0.5)
    assert [r["id"] for r in store.runs()] == [second, first]  # newest first
    assert store.run(first)["spec"] == {"input": {"goal": "goal one"}}
    events = store.events(first)
    assert [e["kind"] for e in events] == ["node_start", "tool_call"]
    assert events[1]["data"] == {"args": [1]}
    assert store.events(first, kinds=["tool_call"])[0]["duration_s"] == 0.5
    with pytest.raises(StoreError, match="No run 999"):
        store.run(999)


def test_store_as_context_manager_closes_and_keeps_committed_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as store:
        run_id = store.create_run("goal", "auto")
    with pytest.raises(sqlite3.ProgrammingError):
        store.runs()  # the connection is closed
    with Store(tmp_path / "a.db") as reopened:
        assert reopened.run(run_id)["goal"] == "goal"


@pytest.fixture
def two_versions(tmp_path: Path) -> Store:
    """A store with versions v1 and v2 registered, each with a folder of its own."""
    store = Store(tmp_path / "a.db")
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
        store.register_model(name, base="b", kind="merged", path=str(tmp_path / name))
    return store


def test_promote_and_rollback_keep_exactly_one_production(two_versions: Store) -> None:
    store = two_versions
    store.promote("v1")
    store.promote("v2")
    assert store.production_model()["name"] == "v2"
    assert store.rollback()["name"] == "v1"
    assert [m["name"] for m in store.models() if m["status"] == "production"] == ["v1"]


def test_promote_refuses_a_version_whose_files_are_gone(two_versions: Store, tmp_path: Path) -> None:
    store = two_versions
    store.promote("v1")
    (tmp_path / "v2").rmdir()
    with pytest.raises(StoreError, match="missing"):
        store.promote("v2")
    assert store.production_model()["name"] == "v1"


def test_register_refuses_missing_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    with pytest.raises(StoreError, match="does not exist"):
        store.register_model("ghost", base="b", kind="merged", path=str(tmp_path / "nope"))
    assert store.models() == []


def test_claim_run_refuses_a_second_live_owner(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    run_id = store.create_run("g", "auto")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert store.claim_run(run_id, pid=sleeper.pid)
        assert not store.claim_run(run_id)  # another live process drives it
    finally:
        sleeper.kill()
        sleeper.wait()
    assert store.claim_run(run_id)  # the owner died (kill -9): the run can be taken over


def test_corrupt_database_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        Store(bad)


def test_corrupt_checkpoint_file_fails_clearly_and_alone(tmp_path: Path) -> None:
    good, bad = tmp_path / "1" / "checkpoints.db", tmp_path / "2" / "checkpoints.db"
    with run_checkpointer(good) as saver:
        assert saver.get_tuple({"configurable": {"thread_id": "1"}}) is None
    bad.parent.mkdir()
    bad.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match="damaged"), run_checkpointer(bad):
        pass
    with run_checkpointer(good):
        pass  # the other run's checkpoints still open
    sqlite3.connect(good).execute("PRAGMA quick_check").fetchone()


def test_atomic_dir_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half-written.bin").write_bytes(b"x")
        raise RuntimeError("disk full")
    assert not target.exists()
    assert list((tmp_path / "cache").iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "ok").write_text("done")
    assert (target / "ok").read_text() == "done"
    atomic_write_text(tmp_path / "f.txt", "hello")
    assert (tmp_path / "f.txt").read_text() == "hello"
