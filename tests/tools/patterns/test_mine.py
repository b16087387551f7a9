"""mine_patterns on a seeded usage log in a real store: every kind with its count, state kept, rows skipped."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from memory.feedback import add_feedback
from memory.patterns import actionable, mark_pattern, pattern
from memory.store import Store
from memory.usage import log_requests
from tools.patterns import MiningConfig, mine_patterns

NOW = 1_750_075_200.0  # 2025-06-16 12:00 UTC, a Monday
DAY = 86_400.0
BIKE = ("You are a bicycle shop triage assistant for Velo Rapido in Lyon. Read the customer's message, decide "
        "whether the bike needs a repair, a part order or a simple adjustment, and answer in three lines: the "
        "category, the likely cause, and what the customer should bring. Today is {date}. Be polite.")
WIKI = ("You are a wiki summary writer. Summarise the article the user pastes in exactly two sentences, neutral "
        "tone, no opinions, no lists, keep names and dates exactly as written, and never add facts that are not "
        "in the article itself, even when you know them.")
LANGS = ["French", "German", "Spanish", "Italian"]
THINGS = ["the cat", "my neighbour", "the train", "our manager", "the small dog", "the weather report"]
VERBS = ["is late", "sleeps on the sofa", "loves pizza", "went to the market", "is broken today"]
BIKE_ASKS = ["my chain slips when I pedal hard", "the rear brake squeaks", "a flat tyre again this week",
             "gears skip on the hill", "the saddle keeps dropping", "wobbly front wheel after a fall"]


def _row(rid: str, ts: float, user: str, *, system: str | None = None, source: str = "local",
         model: str = "tiny-v1", **extra: Any) -> dict[str, Any]:
    import hashlib

    return {"id": rid, "ts": ts, "model": model, "status": "ok", "system_prompt": system,
            "system_hash": hashlib.sha256(system.encode()).hexdigest() if system else None,
            "messages": [{"role": "user", "content": user}], "response": "ok.", "source": source, **extra}


def seed(store: Store, *, translations: int = 40) -> dict[str, list[str]]:
    """Three days of traffic; returns the ids of each group."""
    rng = random.Random(7)
    rows, ids = [], {"bike": [], "wiki": [], "translate": [], "sql": [], "noise": []}
    for i in range(35):  # 25 exact, 10 with another date: one pattern of 35
        date = "2025-06-14" if i < 25 else "2025-06-16"
        rows.append(_row(f"bike-{i}", NOW - 2 * DAY + i * 3000, f"{rng.choice(BIKE_ASKS)} ({i})",
                         system=BIKE.format(date=date)))
        ids["bike"].append(rows[-1]["id"])
    for i in range(6):
        rows.append(_row(f"wiki-{i}", NOW - DAY + i * 60, f"Article {i}: the river Rhône flooded the old town."))
        rows[-1].update(system_prompt=WIKI, system_hash=f"wiki-hash-{i % 1}")
        ids["wiki"].append(rows[-1]["id"])
    for i in range(translations):
        text = f"translate this sentence to {rng.choice(LANGS)}: {rng.choice(THINGS)} {rng.choice(VERBS)}"
        rows.append(_row(f"tr-{i}", NOW - 2 * DAY + i * (160_000 / translations), text, system="Be brief."))
        ids["translate"].append(rows[-1]["id"])
    for i in range(30):  # all on the last day, all answered upstream: a cluster, an upstream group, drift
        text = (f"write a SQL query that returns all {rng.choice(['orders', 'users', 'invoices'])} from "
                f"{rng.choice(['last week', '2023', 'the EU region'])} sorted by {rng.choice(['date', 'price'])}")
        rows.append(_row(f"sql-{i}", NOW - 6 * 3600 + i * 60, text, source="upstream", model="gpt-big"))
        ids["sql"].append(rows[-1]["id"])
    for i in range(10):
        words = " ".join(rng.choice(["alpha", "quantum", "piano", "galaxy", "tomato", "engine", "violet", "canyon"])
                         for _ in range(5))
        rows.append(_row(f"noise-{i}", NOW - DAY + i * 100, f"{words} {i}?"))
        ids["noise"].append(rows[-1]["id"])
    log_requests(store, rows)
    return ids


def seed_unusable(store: Store) -> None:
    bad = [_row(f"err-{i}", NOW - 100, "hello", status="error") for i in range(3)]
    bad += [_row(f"none-{i}", NOW - 100, "x", system=BIKE) for i in range(2)]
    for row in bad[3:]:
        row.update(messages=None, system_prompt=None, response=None)
    bad.append({**_row("broken", NOW - 100, "x"), "messages": "{not json"})
    bad.append(_row("shadow-1", NOW - 100, "translate this sentence to French: hi", source="shadow"))
    bad.append(_row("future", NOW + 3600, "translate this sentence to French: later"))
    log_requests(store, bad)


@pytest.fixture
def store(workspace) -> Iterator[Store]:
    s = Store.open(workspace)
    yield s
    s.close()


def by_kind(result: Any, kind: str) -> list[dict[str, Any]]:
    return [p for p in result.patterns if p["kind"] == kind]


def test_every_kind_is_found_with_its_count(store) -> None:
    ids = seed(store)
    for i, rid in enumerate(ids["translate"][:12]):
        add_feedback(store, rid, rating=-1, correction=f"Le chat est en retard ({i})" if i < 5 else None)
    add_feedback(store, ids["translate"][12], rating=-1)  # then changed their mind: counts as +1
    add_feedback(store, ids["translate"][12], rating=1)
    add_feedback(store, ids["translate"][13], rating=1)  # the other way round: counts as -1
    add_feedback(store, ids["translate"][13], rating=-1)
    result = mine_patterns(store, now=NOW)

    assert result.rows_used == 121 and result.embedder == "wordllama" and result.saved
    assert result.counts == {"system_prompt": 2, "cluster": 3, "negative_feedback": 1, "upstream": 1, "drift": 2}
    [bike, wiki] = by_kind(result, "system_prompt")
    assert (bike["label"], bike["count"], bike["data"]["versions"]) == ("bicycle shop triage", 35, 2)
    assert sorted(bike["spec"]["request_ids"]) == sorted(ids["bike"]) and bike["spec"]["strip_system"] is True
    assert bike["spec"]["system_hash"] == bike["key"] and len(bike["spec"]["system_hashes"]) == 2
    assert (bike["spec"]["objective"], bike["spec"]["teacher"], bike["spec"]["task_name"]) == \
        ("style", "local", "bicycle-shop-triage")
    assert actionable(bike) and "sent 35 times since Saturday" in bike["goal"]
    assert bike["examples"] == ids["bike"][::-1][:5] and bike["id"] == pattern(store, bike["id"])["id"]
    assert (wiki["label"], wiki["count"]) == ("wiki summary writer", 6) and not actionable(wiki)

    clusters = {frozenset(p["spec"]["request_ids"]): p for p in by_kind(result, "cluster")}
    translate, sql = clusters[frozenset(ids["translate"])], clusters[frozenset(ids["sql"])]
    assert translate["count"] == 40 and "translate" in translate["label"] and actionable(translate)
    assert (sql["count"], sql["spec"]["teacher"], sql["spec"]["upstream_model"]) == (30, "upstream", "gpt-big")
    assert "sql" in sql["label"] and actionable(sql)
    [bike_asks] = [p for p in clusters.values() if p["data"]["covered_by"] == [bike["id"]]]
    assert bike_asks["goal"] is None and not actionable(bike_asks)  # the prompt pattern already covers it

    [negative] = by_kind(result, "negative_feedback")
    rated_down = set(ids["translate"][:12]) | {ids["translate"][13]}
    assert negative["count"] == 13 and set(negative["spec"]["request_ids"]) == rated_down and actionable(negative)
    assert negative["data"]["corrections"] == {ids["translate"][i]: f"Le chat est en retard ({i})" for i in range(5)}
    assert negative["data"]["contradictions"] == 2 and "5 with corrections" in negative["goal"]

    [upstream] = by_kind(result, "upstream")
    assert (upstream["label"], upstream["count"], upstream["spec"]["teacher"]) == ("gpt-big", 30, "upstream")
    assert upstream["goal"] is None and upstream["data"]["covered_by"] == [sql["id"]]  # the cluster takes it

    drift = {p["data"]["cluster"]: p for p in by_kind(result, "drift")}
    assert drift[sql["id"]]["data"]["shares"] == {"2025-06-14": 0.0, "2025-06-15": 0.0, "2025-06-16": 0.8108}
    assert drift[sql["id"]]["goal"] is None and drift[translate["id"]]["data"]["share_change"] < -0.1


def test_unusable_rows_are_skipped_and_counted(store) -> None:
    seed(store)
    seed_unusable(store)
    add_feedback(store, "err-0", rating=-1)
    result = mine_patterns(store, now=NOW)
    assert result.rows_read == 129 and result.rows_used == 121
    assert result.skipped == {"not_ok": 3, "no_content": 2, "malformed": 1, "shadow": 1, "after_now": 1,
                              "feedback_unmatched": 1}
    assert not by_kind(result, "negative_feedback")
    assert all("future" not in p["spec"]["request_ids"] for p in result.patterns)


def test_state_survives_re_mining_until_a_handled_pattern_grows(store) -> None:
    ids = seed(store)
    first = mine_patterns(store, now=NOW)
    bike = next(p for p in first.patterns if p["label"] == "bicycle shop triage")
    translate = next(p for p in by_kind(first, "cluster") if "translate" in p["label"])
    mark_pattern(store, bike["id"], "handled", run_id=7)
    mark_pattern(store, translate["id"], "ignored")

    log_requests(store, [_row(f"tr-extra-{i}", NOW - 60 + i, f"translate this sentence to French: the bus {i}",
                              system="Be brief.") for i in range(5)])
    again = {p["id"]: p for p in mine_patterns(store, now=NOW).patterns}
    assert (again[bike["id"]]["state"], again[bike["id"]]["run_id"]) == ("handled", 7)
    assert again[translate["id"]]["state"] == "ignored"  # same cluster id although it grew by 5
    assert again[translate["id"]]["count"] == 45 and not actionable(again[translate["id"]])
    assert set(ids["translate"]) < set(again[translate["id"]]["spec"]["request_ids"])

    log_requests(store, [_row(f"bike-more-{i}", NOW - 30 + i, "my brakes rub", system=BIKE.format(date="x"))
                         for i in range(18)])  # 35 -> 53 >= 1.5 x 35: worth another look
    grown = pattern(store, bike["id"])
    assert grown["state"] == "handled"
    preview = {p["id"]: p for p in mine_patterns(store, now=NOW, save=False).patterns}
    assert preview[bike["id"]]["state"] == "new" and pattern(store, bike["id"])["count"] == 35  # nothing saved
    assert pattern(store, mine_patterns(store, now=NOW).patterns[0]["id"])["count"] == 53
    assert pattern(store, bike["id"])["state"] == "new"


def test_an_empty_or_tiny_log_says_there_is_nothing_to_do(store) -> None:
    empty = mine_patterns(store)
    assert (empty.rows_read, empty.patterns, empty.actionable, empty.embedder) == (0, [], 0, "none")
    assert empty.message.startswith("Nothing to do: 0 logged requests")
    log_requests(store, [_row(f"r{i}", NOW - i, f"hello number {i}") for i in range(3)])
    tiny = mine_patterns(store, now=NOW)
    assert tiny.rows_used == 3 and tiny.patterns == [] and tiny.message.startswith("Nothing to do: 3 requests")
    log_requests(store, [{**_row("x", NOW, "hi"), "messages": None}])
    assert mine_patterns(store, now=NOW).skipped["no_content"] == 1


def test_tfidf_vectors_when_asked_or_when_wordllama_cannot_load(store, workspace) -> None:
    ids = seed(store)
    asked = mine_patterns(store, now=NOW, config=MiningConfig(embedder="tfidf"))
    assert asked.embedder == "tfidf" and not asked.notes
    clusters = {frozenset(p["spec"]["request_ids"]) for p in by_kind(asked, "cluster")}
    assert frozenset(ids["translate"]) in clusters and frozenset(ids["sql"]) in clusters

    (workspace.root / "cache").write_text("not a folder")  # the tokenizer cannot be put where WordLlama looks
    fallback = mine_patterns(store, now=NOW)
    assert fallback.embedder == "tfidf" and "WordLlama could not load offline" in fallback.notes[0]
    assert {p["id"] for p in by_kind(fallback, "cluster")} == {p["id"] for p in by_kind(asked, "cluster")}


def test_a_large_negative_group_is_clustered_by_topic(store) -> None:
    ids = seed(store, translations=80)
    for rid in ids["translate"][:70] + ids["sql"][:25]:
        add_feedback(store, rid, rating=-1)
    negative = by_kind(mine_patterns(store, now=NOW), "negative_feedback")
    sizes = sorted(p["count"] for p in negative if p["key"] != "other")
    assert sizes == [25, 70] and all(actionable(p) for p in negative if p["count"] >= 10)
