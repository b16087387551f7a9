"""The plan of a knowledge goal that names a site, against a real HTTP server on loopback: it crawls a bounded
preview into the run's crawl folder and builds the offline data from it, so its count is what build_data builds,
and gather revalidates those pages instead of downloading them again. A site the plan cannot read is guessed at,
and the plan says so."""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

from agent.context import Context
from agent.nodes import data as data_node
from agent.nodes import understand
from agent.state import State
from evals.report import report_sections
from memory import Store, Workspace
from tests.tools.test_crawl import Site, page, running
from tools.crawl import CrawlConfig

FACTS = {
    "/": ("Riverside office", "The Riverside office opens at 7:45 on weekdays. Visitors must sign in at the blue "
          "desk. The office closes at 18:30 on Fridays. Staff may park on level 3 of the Quay garage."),
    "/leave": ("Leave", "Every employee gets 27 days of paid leave per year. Sick leave must be reported to "
               "Marta Ilves before 9:00. Unused leave expires on 31 March. The request form is called PL-2."),
    "/tools": ("Tools", "The build server is called Heron. Heron runs the nightly tests at 02:10. Access requests "
               "go to the Kestrel team. Passwords must be rotated every 90 days."),
}


def handbook_site(rooms: int = 0) -> Site:
    """The three FACTS pages, the index linking the others; `rooms` more pages hang in a chain off /tools."""
    texts = {**FACTS, **{f"/room{n}": (f"Room {n}", f"Meeting room {n} seats {n + 4} people. Its screen was "
                                       f"made by Ostra in {2010 + n}.") for n in range(rooms)}}
    links = {"/": ["/leave", "/tools"], "/tools": ["/room0"] if rooms else [],
             **{f"/room{n}": [f"/room{n + 1}"] for n in range(rooms - 1)}}
    return Site(pages={path: page(f"<h1>{title}</h1><p>{text}</p>"
                                  + " ".join(f'<a href="{to}">{to}</a>' for to in links.get(path, [])), title=title)
                       for path, (title, text) in texts.items()})


def let_through(site: Site, monkeypatch: pytest.MonkeyPatch, **limits: Any) -> None:
    # The node's crawl refuses loopback; only this server's host:port is let through, with no politeness wait.
    monkeypatch.setattr(data_node, "GATHER_CRAWL", CrawlConfig(
        max_pages=limits.get("max_pages", 50), max_depth=limits.get("max_depth", 2), min_interval_s=0,
        allow_hosts=(f"127.0.0.1:{site.port}",)))


def step(node: Any, state: State, context: Context) -> State:
    update = node(state, Runtime(context=context))
    return replace(state, **{k: v for k, v in update.items() if k != "completed"})


def page_statuses(site: Site) -> dict[str, list[int]]:
    return {path: [hit.status for hit in site.hits(path)] for path in FACTS}


def test_plan_sizes_a_url_source_from_a_preview_crawl_that_gather_revalidates(
        workspace: Workspace, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = handbook_site()
    with running(site):
        let_through(site, monkeypatch)
        goal = f"Put the contents of {site.url}/ into a model so it can answer questions about it"
        with Store.open(workspace) as store:
            run_id = store.create_run(goal, "auto")
        context = Context(run_id, str(workspace.root), policy="auto")
        state = State(goal=goal, base=str(tiny_model_dir), budget_minutes=30)
        state = step(understand.parse_goal, state, context)
        assert [s["kind"] for s in state.spec["sources"]] == ["url"] and state.spec["objective"] == "knowledge"
        state = step(understand.plan, state, context)
        assert page_statuses(site) == {path: [200] for path in FACTS}  # the plan downloaded each page once
        state = step(data_node.gather, state, context)
        state = step(data_node.build_data, state, context)
    planned = state.plan["data_estimate"]
    assert planned["guess"] is False and "all 3 pages" in planned["basis"]
    assert state.plan["documents"] is None  # pages may change before approval: gather revalidates them
    built = state.dataset["n_train"]  # the plan counts what trains; validation takes spare rephrasings
    assert planned["examples"] == built > 30, (planned, built)
    # gather crawled the same folder: every page was answered 304 Not Modified, no body was sent twice
    assert page_statuses(site) == {path: [200, 304] for path in FACTS}
    assert state.documents["crawl"]["fetched"] == 0 and state.documents["crawl"]["from_cache"] == 3
    with Store.open(workspace) as store:
        events = store.events(run_id)
    recorded = next(e for e in events if e["kind"] == "decision" and e["name"] == "data report")
    assert recorded["data"]["n_examples"] == state.dataset["knowledge"]["n_examples"]
    # The run's report says where the data came from and what it became.
    data = report_sections(state, events)["data"]
    assert f"{site.url}/" in data and "3 pages crawled: 0 downloaded, 3 unchanged (cache)" in data
    assert f"The plan expected ~{built} training examples: built from all 3 pages" in data
    assert f"{state.dataset['n_val']} rephrased questions score checkpoints" in data
    for kind, n in state.dataset["knowledge"]["by_kind"].items():
        assert f"<td>{kind}</td><td>{n}</td>" in data
    samples = state.dataset["knowledge"]["samples"]
    assert 3 <= len(samples) <= 5 and len({s["meta"]["kind"] for s in samples}) == len(samples)
    assert all(html.escape(s["messages"][-1]["content"]) in data for s in samples)


def test_a_site_bigger_than_the_preview_is_scaled_up_to_the_gather_limit_and_called_a_guess(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = handbook_site(rooms=6)
    monkeypatch.setattr(understand, "PREVIEW_PAGES", 4)
    with running(site):
        config = CrawlConfig(max_pages=8, max_depth=10, min_interval_s=0, allow_hosts=(f"127.0.0.1:{site.port}",))
        urls = [{"kind": "url", "location": site.url + "/"}]
        preview = understand.preview_knowledge_data(urls, tmp_path, config)
        four_pages = understand.preview_knowledge_data(urls, tmp_path, replace(config, max_pages=4))
    assert preview.crawl["pages_saved"] == 4 and len(site.paths() - {"/robots.txt", "/sitemap.xml"}) == 4
    assert preview.guess and "scaled to gather's limit of 8 pages" in preview.basis
    assert not four_pages.guess and four_pages.crawl["from_cache"] == 4
    assert preview.examples == 2 * four_pages.examples > 0 and preview.documents is None


def test_a_url_the_plan_may_not_crawl_is_guessed_at_a_stated_rate(tmp_path: Path) -> None:
    site = handbook_site()
    with running(site):  # loopback is refused without allow_hosts: the plan cannot read it
        preview = understand.preview_knowledge_data([{"kind": "url", "location": site.url + "/"}], tmp_path,
                                                    CrawlConfig(min_interval_s=0))
    assert site.log == []
    assert preview.guess and "could not read" in preview.basis and "loopback" in preview.basis
    assert preview.examples == round(understand.GUESS_WORDS_PER_URL * understand.KNOWLEDGE_EXAMPLES_PER_WORD)


def test_with_a_teacher_the_plan_counts_the_questions_it_will_ask_on_top(tmp_path: Path) -> None:
    from tools.data import ingest, knowledge

    folder = tmp_path / "pages"
    folder.mkdir()
    for n, (title, text) in enumerate(FACTS.values()):
        (folder / f"page-{n}.md").write_text(f"# {title}\n\n{text}\n")
    sources = [{"kind": "folder", "location": str(folder)}]
    offline = understand.preview_knowledge_data(sources, tmp_path / "a", CrawlConfig())
    taught = understand.preview_knowledge_data(sources, tmp_path / "b", CrawlConfig(), teacher=True)
    chunks = ingest.chunk_documents(ingest.read_documents(taught.documents["path"])).chunks
    asked = sum(knowledge.teacher_pair_counts(chunks, knowledge.KnowledgeConfig()))
    assert asked >= 3 * 4 * len(FACTS)  # three per fact, every page states four or more
    assert taught.examples == offline.examples + asked  # the teacher adds to the rule-made questions
    assert f"plus up to {asked} questions the teacher is asked for" in taught.basis
    assert "teacher" not in offline.basis
