"""Extraction and knowledge generation report progress(stage, done, total), and an interrupted one is run
again to the same result: extraction and the rules redo their work, the teacher asks only what it lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.tools.data.test_knowledge import CHUNKS, FAST, passage_teacher
from tools.data.ingest import collect_documents, read_documents
from tools.data.knowledge import KnowledgeConfig, TeacherEndpoint, build_knowledge

PROSE = "The Heron build server runs the nightly tests at 02:10 and keeps their logs for 30 days. "


class Recorder:
    """A progress callback that keeps every report, and can stand in for Ctrl-C at a chosen point."""

    def __init__(self, interrupt_at: tuple[str, int] | None = None) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.interrupt_at = interrupt_at

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))
        if (stage, done) == self.interrupt_at:
            raise KeyboardInterrupt

    def stage(self, name: str) -> list[tuple[int, int]]:
        return [(done, total) for stage, done, total in self.calls if stage == name]


def handbook(folder: Path) -> Path:
    folder.mkdir()
    for n in range(5):
        (folder / f"page{n}.html").write_text(f"<html><head><title>Page {n}</title></head><body><main>"
                                              f"<h1>Page {n}</h1><p>{PROSE * (n + 2)}Page {n} is kept.</p>"
                                              "</main></body></html>")
    (folder / "notes.txt").write_text(PROSE * 3)
    (folder / "blob.txt").write_bytes(b"\x00\x01binary\x00" * 20)  # refused, and still counted as done
    return folder


def test_extraction_counts_every_file_and_an_interrupted_one_is_simply_run_again(tmp_path: Path) -> None:
    sources = [{"kind": "folder", "location": str(handbook(tmp_path / "handbook"))}]
    progress = Recorder()
    whole = collect_documents(sources, tmp_path / "whole.jsonl", progress=progress)
    assert progress.stage("extract") == [(n, 7) for n in range(8)]
    assert whole.n_documents == 6 and whole.dropped == {"binary": 1}

    out = tmp_path / "again.jsonl"
    with pytest.raises(KeyboardInterrupt):
        collect_documents(sources, out, progress=Recorder(interrupt_at=("extract", 3)))
    assert not out.exists()  # nothing half-written for a rerun to trip over
    again = collect_documents(sources, out)
    assert read_documents(again.path) == read_documents(whole.path)


def test_offline_generation_reports_each_chunk_then_each_checked_example() -> None:
    progress = Recorder()
    result = build_knowledge(CHUNKS, KnowledgeConfig(), progress=progress)
    generate, check = progress.stage("generate"), progress.stage("check")
    assert generate == [(n, len(CHUNKS)) for n in range(len(CHUNKS) + 1)]
    candidates = check[-1][1]
    assert check[0] == (0, candidates) and check[-1] == (candidates, candidates)
    assert [done for done, _ in check] == sorted(done for done, _ in check)
    assert candidates >= len(result.examples) > 0
    assert progress.stage("teacher") == []


def test_teacher_batches_report_each_chunk_and_a_rerun_after_ctrl_c_asks_only_for_the_rest(tmp_path: Path) -> None:
    config = KnowledgeConfig(teacher_concurrency=1, **FAST)
    cache = tmp_path / "teacher-cache"
    with FakeUpstream(answer=passage_teacher) as upstream:
        endpoint = TeacherEndpoint(upstream.url, "k", "teacher-large")
        with pytest.raises(KeyboardInterrupt):
            build_knowledge(CHUNKS, config, teacher=endpoint, cache_dir=cache,
                            progress=Recorder(interrupt_at=("teacher", 2)))
        asked_before = len(upstream.chat_requests())
        # Ctrl-C drops the chunks still queued: at most the one request in flight finished after it.
        assert 2 <= asked_before <= 3 and len(list(cache.iterdir())) == asked_before
        progress = Recorder()
        resumed = build_knowledge(CHUNKS, config, teacher=endpoint, cache_dir=cache, progress=progress)
        assert len(upstream.chat_requests()) == len(CHUNKS)  # the rerun asked only for the chunks not cached
    assert resumed.teacher["cached"] == asked_before and resumed.teacher["requests"] == len(CHUNKS) - asked_before
    assert progress.stage("teacher") == [(n, len(CHUNKS)) for n in range(len(CHUNKS) + 1)]
    fresh = build_knowledge(CHUNKS, config, teacher=endpoint, cache_dir=cache)  # all cached now: no server needed
    assert resumed.examples == fresh.examples
